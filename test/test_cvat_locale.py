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

"""CVAT exports with non-ASCII frame names, whatever Python's filesystem encoding is.

Their ImageSets lists are UTF-8, their zips name members in UTF-8 (or, without the zip's
UTF-8 flag, in bytes zipfile decodes as cp437). Under ``LC_ALL=C PYTHONUTF8=0`` a reviewer
saw import-cvat call the mask of 'фото_0' missing though it was there, fail to unpack the
zip ('ascii' codec can't encode), and dataset check call the export's masks missing. The
C-locale cases run in a child process, the only way to have another filesystem encoding.
"""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_cvat import ROAD, extract_folder

from canet_ros.data import check_dataset, import_cvat, write_cvat_package
from canet_ros.data.files import read_index_mask

# A 240-byte name: a file name still (255 bytes), but 720 were it counted as surrogates.
STEMS = ["фото_0", "frame_1", "画像_2", "é3", "frame_4", "д" * 120]
CHILD = """
import json, os, sys
from canet_ros.data import DatasetError, DatasetProblems, check_dataset, import_cvat
from canet_ros.data import write_cvat_package
from canet_ros.data.cvat import CLASS_DIR, LIST_DIR
from test_cvat import ROAD
import numpy as np

def names(folder):
    return sorted(os.fsencode(n).decode("utf-8") for n in os.listdir(folder))

job, source, into = sys.argv[1:4]
out = {"encoding": sys.getfilesystemencoding()}
try:
    if job == "import":
        out["masks"] = import_cvat(source, into, overwrite=True)["masks"]
        out["files"] = names(os.path.join(into, "masks"))
    elif job == "check":
        out["frames"] = check_dataset(source).frames
    else:  # pre-labels for the frames listed from images/, as extract-frames would
        stems = [os.path.splitext(n)[0] for n in sorted(os.listdir(source))]
        items = [(s, np.zeros((8, 12), np.uint8)) for s in stems]
        write_cvat_package(into, ROAD, items)
        out["list"] = open(os.path.join(into, LIST_DIR, "default.txt"), "rb").read().decode()
        out["files"] = names(os.path.join(into, CLASS_DIR))
except DatasetProblems as exc:
    out["problems"] = exc.problems
except (DatasetError, UnicodeError) as exc:
    out["error"] = str(exc)
print(json.dumps(out))
"""


def labels() -> dict:
    rng = np.random.default_rng(4)
    return {s: rng.integers(0, 5, (16, 20)).astype(np.uint8) for s in STEMS}


def in_c_locale(*args: Path | str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHON"))}
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-c", CHILD, *map(os.fsencode, args)],
                          capture_output=True, timeout=300, cwd=here,
                          env=env | {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONPATH": here})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    found = json.loads(proc.stdout)
    assert found.pop("encoding") == "ascii"  # else these tests test nothing
    return found


class RawNames(zipfile.ZipInfo):
    """A member named by its UTF-8 bytes without the zip's UTF-8 flag (Info-ZIP's zip -r)."""

    def _encodeFilenameFlags(self):  # noqa: N802 (zipfile's name)
        return self.filename.encode("utf-8"), self.flag_bits


def zip_without_utf8_flag(folder: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.writestr(RawNames(file.relative_to(folder).as_posix()), file.read_bytes())
    with zipfile.ZipFile(path) as zf:  # as an unzip of it sees it: cp437, so not the list's
        assert "SegmentationClass/фото_0.png" not in zf.namelist()
    return path


def export(tmp_path: Path, form: str) -> tuple:
    into = extract_folder(tmp_path / "data", ROAD, labels())
    package = write_cvat_package(into / "cvat", ROAD, labels().items(), tmp_path / "c.zip")
    if form == "zip without the UTF-8 flag":
        return zip_without_utf8_flag(package, tmp_path / "raw.zip"), into
    return (package if form == "folder" else tmp_path / "c.zip"), into


FORMS = ["folder", "zip", "zip without the UTF-8 flag"]


@pytest.mark.parametrize("form", FORMS)
def test_import_finds_non_ascii_frames_under_an_ascii_filesystem_encoding(tmp_path, form):
    source, into = export(tmp_path, form)
    found = in_c_locale("import", source, into)
    assert found == {"masks": len(STEMS), "files": sorted(f"{s}.png" for s in STEMS)}
    for stem, mask in labels().items():  # read back under this (UTF-8) locale
        np.testing.assert_array_equal(read_index_mask(into / "masks" / f"{stem}.png"), mask)


def test_a_zip_without_the_utf8_flag_names_its_frames_by_their_utf8_bytes(tmp_path):
    source, into = export(tmp_path, "zip without the UTF-8 flag")
    assert sys.getfilesystemencoding() == "utf-8"
    assert import_cvat(source, into)["masks"] == len(STEMS)
    expected = sorted(f"{s}.png" for s in STEMS)
    assert sorted(p.name for p in (into / "masks").iterdir()) == expected


def test_a_missing_mask_is_named_as_the_list_spells_it(tmp_path):
    source, into = export(tmp_path, "folder")
    (source / "SegmentationClass" / "фото_0.png").unlink()
    found = in_c_locale("import", source, into)
    # File names go out as their bytes (the CLI's stderr does so): here UTF-8.
    found["problems"] = [p.encode("utf-8", "surrogateescape").decode("utf-8")
                         for p in found.get("problems", [])]
    assert found == {"problems": [f"{source}/SegmentationClass/фото_0.png: missing (frame "
                                  f"'фото_0' is listed in ImageSets/Segmentation)"]}


def test_check_of_an_export_folder_finds_its_masks_under_an_ascii_filesystem_encoding(
        tmp_path):
    source, _ = export(tmp_path, "folder")
    expected = check_dataset(source).frames  # under this (UTF-8) locale
    assert sum(expected.values()) == len(STEMS)
    assert in_c_locale("check", source, "-") == {"frames": expected}


def test_pre_labels_of_non_ascii_frames_are_listed_in_utf8_under_an_ascii_encoding(
        tmp_path):
    into = extract_folder(tmp_path / "data", ROAD, labels())
    found = in_c_locale("write", into / "images", tmp_path / "cvat")
    assert found == {"list": "".join(f"{s}\n" for s in sorted(STEMS)),
                     "files": sorted(f"{s}.png" for s in STEMS)}
