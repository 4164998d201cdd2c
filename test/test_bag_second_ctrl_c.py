# Copyright 2026 canet_ros developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""A second Ctrl-C while an interrupted run writes its report must not lose the report.

Users press Ctrl-C twice; the first stops the run, the second lands while the outputs
are being finished (report.json, cvat.zip, extract.json). A real SIGINT is delivered
to this process at that moment.
"""
from __future__ import annotations

import json
import os
import signal
import zipfile

import pytest
from test_bag_helpers import (
    HUMBLE,
    Msg,
    camera_bag,
    raw_image,
    receive_ns,
    shared_engine,
    write_bag,
)

from canet_ros.bag import SegmentOptions, pipeline, segment_bag
from canet_ros.bag.extract import ExtractOptions, extract_frames
from canet_ros.data.cvat import PackageWriter

CAM = "/cam/image_raw"


@pytest.fixture(scope="module")
def engine(one_torch_thread):
    return shared_engine()


def ctrl_c_on(call: int, inner):
    """``inner`` that raises KeyboardInterrupt at its ``call``-th call, as the first Ctrl-C."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return inner(*args, **kwargs)

    return wrapped


def second_ctrl_c_during(inner):
    """``inner``, with a real SIGINT delivered to this process as it starts."""
    def wrapped(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:  # the default handler: the outputs would be lost here
            pytest.fail("the second Ctrl-C was not deferred while the outputs were written")
        return inner(*args, **kwargs)

    return wrapped


def test_segment_bag_report_survives_a_second_ctrl_c(engine, tmp_path, monkeypatch, capsys):
    bag = write_bag(tmp_path / "in", [Msg(CAM, receive_ns(i), raw_image(HUMBLE, i))
                                      for i in range(5)])
    monkeypatch.setattr(engine, "infer", ctrl_c_on(3, engine.infer))
    monkeypatch.setattr(pipeline, "write_report", second_ctrl_c_during(pipeline.write_report))
    report = segment_bag(engine, SegmentOptions(bag, tmp_path / "out", topic=CAM))
    assert report["interrupted"] is True and report["frames"] == 2
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["interrupted"] is True and saved["frames"] == 2
    assert (tmp_path / "out" / "report.md").is_file()
    assert "please wait" in capsys.readouterr().err


def test_extract_frames_folder_survives_a_second_ctrl_c(engine, tmp_path, monkeypatch):
    src = camera_bag(tmp_path / "in", n=4, kind="rgb8", topic=CAM)
    monkeypatch.setattr(engine, "infer", ctrl_c_on(3, engine.infer))
    monkeypatch.setattr(PackageWriter, "close", second_ctrl_c_during(PackageWriter.close))
    out = tmp_path / "out"
    report = extract_frames(ExtractOptions(src, out, min_interval=0.0), lambda: engine)
    assert report["interrupted"] is True and len(report["frames"]) == 2
    assert len(json.loads((out / "extract.json").read_text())["frames"]) == 2
    with zipfile.ZipFile(out / "cvat.zip") as zf:
        assert zf.testzip() is None
        assert sum(n.startswith("SegmentationClass/") for n in zf.namelist()) == 2
