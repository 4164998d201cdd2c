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

"""A checkpoint the export child refuses is refused here as in-process: same error, no torch.

Before, the child loaded torch and failed, then this process loaded torch and read the
file again only to report the error: a bad checkpoint on a first start took 2-3x as long
to refuse, and left the process holding torch. Each start here is a fresh process with
its own empty ``CANET_ROS_CACHE``; the expectation is the in-process engine's own error.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import test_export_in_child as first_start
from test_export_in_child import ROOT, cached, reference, said, start

from canet_ros.inference import SegmentationEngine

seeded = first_start.seeded  # the small checkpoint file (a fixture), made once per module
REFUSE = r"""
import json, logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
checkpoint, backbone = sys.argv[1:3]
from canet_ros.inference import SegmentationEngine
try:
    SegmentationEngine(checkpoint, backbone=backbone or None, device="cpu",
                       export_in_child=True, warmup=False)
except Exception as exc:
    print(json.dumps({"error": [type(exc).__module__, type(exc).__qualname__, str(exc)],
                      "torch": "torch" in sys.modules}))
"""


def diverged(path, out):
    """Copy the checkpoint ``path`` with one NaN weight (what a diverged run saves)."""
    import torch

    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["classifier.weight"].view(-1)[0] = float("nan")
    torch.save(blob, out)
    return out


def not_a_checkpoint(path, out):
    import torch

    torch.save({"weights": torch.zeros(3)}, out)
    return out


def small_input_size(path, out):
    """Copy the checkpoint with a training input size no engine can run at."""
    import torch

    blob = torch.load(path, weights_only=True)
    blob["input_size"] = [8, 8]
    torch.save(blob, out)
    return out


CASES = {  # (make the file from the good one, backbone asked, given relative to the cwd)
    "nan weights": (diverged, None, False),
    "wrong backbone": (None, "resnet18", True),  # the file named as given, not resolved
    "not a checkpoint": (not_a_checkpoint, None, False),
    "bad input_size": (small_input_size, None, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_refused_checkpoint_is_refused_as_in_process_without_torch(
        seeded, tmp_path, monkeypatch, case):
    good, _ = seeded
    make, backbone, relative = CASES[case]
    path = make(good, tmp_path / "bad.pt") if make else good
    given = os.path.relpath(path, tmp_path) if relative else str(path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "reference_cache"))
    with pytest.raises(Exception) as refused:  # the independent expectation: in-process
        SegmentationEngine(given, backbone=backbone, device="cpu", warmup=False)
    expected = [type(refused.value).__module__, type(refused.value).__qualname__,
                str(refused.value)]
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", REFUSE, given, backbone or ""],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**os.environ, "CANET_ROS_CACHE": str(cache),
                               "PYTHONPATH": os.pathsep.join(
                                   filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["error"] == expected, proc.stderr
    assert report["torch"] is False, proc.stderr  # not loaded here to refuse it again
    assert said(proc.stderr, "the child process refused", "DEBUG"), proc.stderr
    assert not cached(path, cache)


def refuser(tmp_path, line):
    """Return a stand-in for the child's interpreter: it prints ``line`` and exits 3."""
    script = tmp_path / "refuser.sh"
    script.write_text(f"#!/bin/sh\necho '{line}'\nexit 3\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("line", ['{"refused": "OSError", "message": "not ours"}',
                                  "EngineError: not a line the child prints"])
def test_a_refusal_the_child_did_not_make_is_any_other_failure(seeded, tmp_path, line):
    # Only EngineError or CheckpointError as export_child_main prints them is raised: a
    # status 3 with other output (another program, another class) exports here instead.
    path, folder = seeded
    report, labels, stderr = start(path, folder, tmp_path / "cache",
                                   child=refuser(tmp_path, line))
    assert report["torch"] is True, stderr
    np.testing.assert_array_equal(labels, reference(path, folder))
    assert said(stderr, "failed (exit status 3)", "DEBUG"), stderr
