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

"""What a user reads when --checkpoint is not a usable checkpoint: one plain sentence.

torch's own load errors suggest ``weights_only=False`` (which would run code from the
file); none of that may reach the user.
"""
import pickle
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from canet_ros.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    build_metadata,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from canet_ros.classes import CAMVID
from canet_ros.models import build_canet

ROOT = Path(__file__).resolve().parents[1]
# Words of torch's advice and of raw exception texts that must never be shown.
LEAKS = ("weights_only", "Re-running", "torch.load", "pop from empty list", "UnpicklingError",
         "PytorchStreamReader", "Traceback")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    return save_checkpoint(path, build_canet("mobilenetv2", CAMVID.num_classes),
                           build_metadata("mobilenetv2", CAMVID, input_size=(480, 360)))


def message(path, **kwargs):
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path, **kwargs)
    text = str(exc.value)
    assert "\n" not in text and not any(leak in text for leak in LEAKS), text
    return text


def write(path, data):
    path.write_bytes(data)
    return path


def test_random_bytes(tmp_path):
    path = write(tmp_path / "random.pt", random.Random(0).randbytes(4096))
    assert message(path) == f"{path}: not a torch file, so not a canet_ros checkpoint"


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("a text file\nwith two lines\n")
    assert message(path) == f"{path}: not a torch file, so not a canet_ros checkpoint"


def test_plain_pickle_and_foreign_zip_and_empty_file(tmp_path):
    pickled = write(tmp_path / "data.pkl", pickle.dumps({"a": 1}, protocol=4))
    assert message(pickled).endswith("not a torch file, so not a canet_ros checkpoint")
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "hello")
    assert message(archive).endswith("a zip archive but not a torch file, so not a canet_ros "
                                     "checkpoint")
    empty = write(tmp_path / "empty.pt", b"")
    assert message(empty) == f"{empty}: an empty file, not a canet_ros checkpoint"


def test_truncated_torch_files(tmp_path, good):
    data = good.read_bytes()
    cut = write(tmp_path / "cut.pt", data[: len(data) // 2])
    assert "damaged or truncated torch file" in message(cut)
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(1000)}, legacy, _use_new_zipfile_serialization=False)
    cut_legacy = write(tmp_path / "cut_legacy.pt", legacy.read_bytes()[:-100])
    assert "damaged or truncated torch file" in message(cut_legacy)


def test_flipped_bytes_inside_a_weight_record(tmp_path, good):
    # torch.load itself does not check the records' CRC-32: these bytes would load as
    # garbage weights. The biggest record is a weight tensor.
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    at = info.header_offset
    start = at + 30 + int.from_bytes(data[at + 26: at + 28], "little") + int.from_bytes(
        data[at + 28: at + 30], "little")
    middle = start + info.file_size // 2
    data[middle: middle + 64] = bytes(b ^ 0xFF for b in data[middle: middle + 64])
    flipped = write(tmp_path / "flipped.pt", bytes(data))
    assert message(flipped) == (f"{flipped}: a damaged torch file (a record fails its "
                                f"checksum), unreadable")


def test_torch_files_without_canet_ros_metadata(tmp_path):
    state = tmp_path / "state.pt"
    torch.save(build_canet("mobilenetv2", 11).state_dict(), state)
    assert message(state) == (f"{state}: a torch file holding a bare state_dict without "
                              f"canet_ros metadata, not a canet_ros checkpoint")
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(3)}, legacy, _use_new_zipfile_serialization=False)
    assert "a bare state_dict without canet_ros metadata" in message(legacy)
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], listed)
    assert "a torch file holding a list without canet_ros metadata" in message(listed)


def test_pickled_objects_are_refused_without_advice(tmp_path):
    whole = tmp_path / "whole_model.pt"
    torch.save(torch.nn.Linear(2, 2), whole)
    assert message(whole) == (f"{whole}: a torch file holding pickled Python objects (such as "
                              f"a whole model), not a canet_ros checkpoint of tensors and "
                              f"metadata")
    forged = tmp_path / "forged.pt"
    torch.save({"format": "canet_ros.checkpoint", "payload": object()}, forged)
    assert "pickled Python objects" in message(forged)


def test_checkpoint_for_another_backbone(tmp_path, good):
    # The fix is named: the node's backbone parameter defaults to mobilenetv2, so a user
    # who gave only a ResNet checkpoint never asked for anything.
    assert message(good, backbone="resnet18") == (
        f"{good}: a checkpoint for the mobilenetv2 backbone, not for resnet18 as asked; ask "
        f"for mobilenetv2 (the node's backbone:=mobilenetv2, the command line's --backbone "
        f"mobilenetv2)")
    blob = read_checkpoint(good)
    blob["backbone"] = "vgg16"
    other = tmp_path / "vgg.pt"
    torch.save(blob, other)
    assert message(other) == (f"{other}: a checkpoint for backbone 'vgg16', which this "
                              f"canet_ros does not have (mobilenetv2, resnet18, resnet101)")


@pytest.mark.parametrize("change, expected", [
    ({"num_classes": 0}, "num_classes 0 is not a positive integer"),
    ({"num_classes": "eleven"}, "num_classes 'eleven' is not a positive integer"),
    ({"class_names": list(CAMVID.names[:5])}, "class_names has 5 entries for 11 classes"),
    ({"palette": "red"}, "palette has str entries for 11 classes"),
    ({"palette": None}, "palette has NoneType entries for 11 classes"),
    ({"palette": [[300, 0, 0]] * 11}, "palette entry [300, 0, 0] is not three integers 0-255 "
                                      "(R, G, B)"),
    ({"palette": [[0, 0]] * 11}, "palette entry [0, 0] is not three integers 0-255 (R, G, B)"),
    ({"class_names": [1] * 11}, "class_names must all be strings"),
    ({"ignore_index": "x"}, "ignore_index 'x' is not an integer >= 0"),
    ({"mean": [0.5, 0.5]}, "mean [0.5, 0.5] is not three finite numbers (one per RGB channel)"),
    ({"std": [0.0, 0.0, 0.0]}, "std [0.0, 0.0, 0.0] is not three finite numbers > 0 (one per "
                               "RGB channel)"),
    ({"std": [0.2, float("nan"), 0.2]}, "std [0.2, nan, 0.2] is not three finite numbers > 0 "
                                        "(one per RGB channel)"),
    ({"input_size": [480]}, "input_size [480] is not [width, height] in pixels"),
])
def test_class_metadata_that_does_not_add_up(tmp_path, good, change, expected):
    """Hand-edited metadata: one line naming the file, before any model is built."""
    blob = read_checkpoint(good)
    blob.update(change)
    bad = tmp_path / "edited.pt"
    torch.save(blob, bad)
    assert message(bad) == f"{bad}: {expected}"


def test_newer_format_and_folder(tmp_path, good):
    blob = read_checkpoint(good)
    blob["format_version"] = FORMAT_VERSION + 1
    newer = tmp_path / "newer.pt"
    torch.save(blob, newer)
    assert "newer than this canet_ros supports" in message(newer)
    assert message(tmp_path) == f"{tmp_path}: a folder, not a checkpoint file"


def test_cli_prints_one_line_for_random_bytes(tmp_path):
    # The whole stderr of the real command: no torch warning or advice around the error.
    path = write(tmp_path / "random.pt", random.Random(1).randbytes(10_000))
    proc = subprocess.run([sys.executable, "-m", "canet_ros.cli", "info", "--checkpoint",
                           str(path)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"canet info: error: {path}: not a torch file, so not a canet_ros checkpoint"]
    assert proc.stdout == ""


def test_checkpoint_module_loads_without_torch():
    # The command line names CheckpointError and read_checkpoint while building --help.
    code = "import sys, canet_ros.checkpoint; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr


def test_an_input_size_the_engine_cannot_run_names_the_checkpoint(tmp_path, good):
    from canet_ros.inference import EngineError, SegmentationEngine

    blob = read_checkpoint(good)
    blob["input_size"] = [7, 5]
    tiny = tmp_path / "tiny.pt"
    torch.save(blob, tiny)
    with pytest.raises(EngineError) as exc:
        SegmentationEngine(tiny, device="cpu", runtime="torch", warmup=False)
    assert str(exc.value).startswith(f"{tiny}: its input_size cannot be the resolution")
    assert "7x5" in str(exc.value) and str(exc.value).endswith("give a resolution")
