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

"""An export that changes the class-prior correction must not pass the source's figures off.

The bundled model (correction 0.75) scores 68.8 mIoU on CamVid val; exported at 0 it scores
65.1, at 1.5 67.3. Its ``evaluation`` block and ``history`` describe the source file, so
``canet info`` on the export must not print them as this file's.
"""
import torch

from canet_ros.checkpoint import read_checkpoint
from canet_ros.cli import main as canet_main

CHANGED = "then canet export changed the class-prior correction from 0.75 to "


def _export(tmp_path, name, *extra):
    out = tmp_path / name
    assert canet_main(["export", "--format", "checkpoint", "--checkpoint", "default", "--out",
                       str(out), *extra]) == 0
    return out


def _info(capsys, path):
    capsys.readouterr()
    assert canet_main(["info", "--checkpoint", str(path)]) == 0
    return capsys.readouterr().out


def test_changed_correction_moves_the_figures_to_the_source(tmp_path, capsys):
    source = read_checkpoint("default")
    out = _export(tmp_path, "pc0.pt", "--prior-correction", "0", "--precision", "fp32")
    # Only plain types: the shipped loaders read with weights_only=True.
    blob = torch.load(out, map_location="cpu", weights_only=True)
    assert "evaluation" not in blob and "prior_correction" not in blob
    assert blob["source_evaluation"] == {**source["evaluation"], "prior_correction": 0.75}
    assert blob["history"] == f"{source['history']}; {CHANGED}0"
    text = _info(capsys, out)
    assert "class-prior correction: 0\n" in text
    figures = text[text.index("this file's figures"):text.index("training history")]
    assert figures.startswith("this file's figures: none recorded in the file")
    assert ("the source's figures (measured at class-prior correction 0.75 on the file before "
            "canet export changed it; this file has 0, so these are not its figures):\n"
            "  CamVid val") in figures
    assert figures.count("68.8 mIoU") == 1
    # The run's own record was scored at 0, which this file now has: no warning on it.
    assert "training history (recorded by canet train when it chose these weights):" in text
    assert f"{CHANGED}0\n" in text

    # A second export keeps the figures with the file and strength they were measured at.
    again = tmp_path / "pc15.pt"
    assert canet_main(["export", "--format", "checkpoint", "--checkpoint", str(out), "--out",
                       str(again), "--prior-correction", "1.5"]) == 0
    blob = read_checkpoint(again)
    assert "evaluation" not in blob and blob["prior_correction"] == 1.5
    assert blob["source_evaluation"]["prior_correction"] == 0.75
    assert blob["history"].endswith(
        f"{CHANGED}0; then canet export changed the class-prior correction from 0 to 1.5")
    assert "at class-prior correction 0.75 on the file before canet export changed it; this " \
        "file has 1.5" in _info(capsys, again)


def test_unchanged_correction_keeps_the_figures(tmp_path, capsys):
    # fp16 export of the fp16 bundled file, with no strength or the one it already has: the
    # weights are the ones measured, so the figures and history stay the file's own.
    source = read_checkpoint("default")
    bundled = _info(capsys, "default")
    for name, extra in (("plain.pt", ()), ("same.pt", ("--prior-correction", "0.75"))):
        out = _export(tmp_path, name, *extra)
        blob = read_checkpoint(out)
        assert blob["evaluation"] == source["evaluation"] and "source_evaluation" not in blob
        assert blob["history"] == source["history"]
        text = _info(capsys, out)
        assert text.split("\n", 1)[1] == bundled.split("\n", 1)[1]  # all but the path line
        assert "this file's figures (measured on this file" in text and "68.8 mIoU" in text
