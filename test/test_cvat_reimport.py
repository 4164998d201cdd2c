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

"""import-cvat: messages that name files in a zip, frames an export lacks, re-imports."""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_cvat import CAMVID, extract_folder, masks

from canet_ros.cli import main
from canet_ros.data import (
    DatasetError,
    DatasetProblems,
    check_dataset,
    import_cvat,
    write_cvat_package,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "own_data.md"


def zip_folder(folder: Path, zip_path: Path, top: str = "") -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, top + path.relative_to(folder).as_posix())
    return zip_path


@pytest.mark.parametrize("top", ["", "task_1/"], ids=["flat", "top-folder"])
def test_errors_in_a_zip_name_the_zip_and_its_member(tmp_path, top):
    """The zip is unpacked to a temporary folder that is gone when the error is read."""
    labels = masks(CAMVID, n=3)
    folder = extract_folder(tmp_path / "data", CAMVID, labels)
    pkg = write_cvat_package(tmp_path / "cvat", CAMVID, labels.items())
    first, second = list(labels)[:2]
    colour = cv2.imread(str(pkg / "SegmentationClass" / f"{first}.png"))
    colour[0, 0] = (3, 2, 1)
    cv2.imwrite(str(pkg / "SegmentationClass" / f"{first}.png"), colour)
    small = cv2.imread(str(pkg / "SegmentationClass" / f"{second}.png"))[:8]
    cv2.imwrite(str(pkg / "SegmentationClass" / f"{second}.png"), small)
    export = zip_folder(pkg, tmp_path / "export.zip", top)
    with pytest.raises(DatasetProblems) as exc:
        import_cvat(export, folder)
    text = str(exc.value)
    assert f"{export}:{top}SegmentationClass/{first}.png: colours not in labelmap.txt" in text
    assert f"{export}:{top}SegmentationClass/{second}.png: mask is 20x8" in text
    assert "canet_cvat_" not in text
    labelmap = (pkg / "labelmap.txt").read_text().replace("Car:", "Truck:")
    (pkg / "labelmap.txt").write_text(labelmap)
    export = zip_folder(pkg, tmp_path / "export2.zip", top)
    with pytest.raises(DatasetProblems, match=re.escape(
            f"{export}:{top}labelmap.txt: label 'Truck' is not one of the classes")):
        import_cvat(export, folder)
    (pkg / "labelmap.txt").unlink()
    (tmp_path / "bare").mkdir()  # not an export at all: the zip is named, not a tmp folder
    (tmp_path / "bare" / "notes.txt").write_text("no labelmap")
    with pytest.raises(DatasetError, match=f"^{re.escape(str(tmp_path / 'bare.zip'))}: not "):
        import_cvat(zip_folder(tmp_path / "bare", tmp_path / "bare.zip"), folder)


def without(pkg: Path, stems: list) -> Path:
    """Make ``pkg`` what CVAT exports after ``stems`` are deleted there."""
    listed = pkg / "ImageSets" / "Segmentation" / "default.txt"
    kept = [s for s in listed.read_text().split() if s not in stems]
    listed.write_text("".join(f"{s}\n" for s in kept))
    for stem in stems:
        (pkg / "SegmentationClass" / f"{stem}.png").unlink()
        (pkg / "SegmentationObject" / f"{stem}.png").unlink()
    return pkg


def test_first_import_names_the_frames_the_export_lacks(tmp_path, capsys):
    labels = masks(CAMVID, n=4)
    folder = extract_folder(tmp_path / "data", CAMVID, labels)
    deleted = list(labels)[1:3]
    pkg = without(write_cvat_package(tmp_path / "cvat", CAMVID, labels.items()), deleted)
    assert main(["dataset", "import-cvat", str(pkg), "--into", str(folder)]) == 0
    err = capsys.readouterr().err
    assert f"2 frames in {folder / 'images'} have no mask" in err
    assert f"({deleted[0]}, {deleted[1]})" in err and "label them in CVAT" in err
    with pytest.raises(DatasetProblems, match="image without a mask"):
        check_dataset(folder)  # what the warning foretells


def test_reimport_moves_aside_the_masks_of_frames_deleted_in_cvat(tmp_path):
    labels = masks(CAMVID, n=4)
    folder = extract_folder(tmp_path / "data", CAMVID, labels)
    pkg = write_cvat_package(tmp_path / "cvat", CAMVID, labels.items())
    assert import_cvat(pkg, folder)["warnings"] == []
    deleted = list(labels)[1:3]
    result = import_cvat(without(pkg, deleted), folder, overwrite=True)
    assert result["masks"] == 2 and result["removed_masks"] == deleted
    assert sorted(p.stem for p in (folder / "masks").iterdir()) == \
        [s for s in labels if s not in deleted]
    for stem in deleted:  # kept aside unchanged, not deleted
        back = cv2.imread(str(folder / "masks_removed" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(back, labels[stem])
    assert any(w.startswith(f"2 masks of frames not in this export ({deleted[0]}, ")
               for w in result["warnings"])
    assert any("2 frames in" in w for w in result["warnings"])


def test_reimport_of_some_frames_can_keep_the_other_masks(tmp_path):
    labels = masks(CAMVID, n=3)
    folder = extract_folder(tmp_path / "data", CAMVID, labels)
    pkg = write_cvat_package(tmp_path / "cvat", CAMVID, labels.items())
    import_cvat(pkg, folder)
    result = import_cvat(without(pkg, list(labels)[:1]), folder, overwrite=True,
                         keep_other_masks=True)
    assert result["removed_masks"] == [] and result["warnings"] == []
    assert len(list((folder / "masks").iterdir())) == 3
    assert not (folder / "masks_removed").exists()


def test_doc_says_only_the_unpacked_export_is_a_dataset(tmp_path):
    pkg = write_cvat_package(tmp_path / "cvat", CAMVID, masks(CAMVID, n=1).items())
    with pytest.raises(DatasetError):
        check_dataset(zip_folder(pkg, tmp_path / "export.zip"))
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert "The export (zip or unpacked folder) can also be used as a dataset" not in text
    assert "The unpacked export folder (not the zip) can also be used as a dataset" in text
