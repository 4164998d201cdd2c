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

"""CVAT "Segmentation mask 1.1": pre-labels written as a package, exports read back."""
from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from canet_ros.classes import CAMVID, ClassSet
from canet_ros.cli import main
from canet_ros.data import (
    DatasetError,
    DatasetProblems,
    FolderDataset,
    check_dataset,
    import_cvat,
    write_cvat_package,
    write_dataset,
)
from canet_ros.data.cvat import read_labelmap, voc_color

ROAD = ClassSet("road5", ("road", "sidewalk", "vehicle", "person", "background"),
                ((128, 64, 128), (244, 35, 232), (0, 0, 142), (220, 20, 60), (70, 70, 70)),
                255)


def masks(class_set: ClassSet, n: int = 3, size=(20, 16)) -> dict:
    """Random index masks with some ignored pixels in each."""
    rng = np.random.default_rng(1)
    out = {}
    for i in range(n):
        m = rng.integers(0, class_set.num_classes, size[::-1]).astype(np.uint8)
        m[:3, :5] = class_set.ignore_index
        out[f"1700000000_{i:09d}"] = m
    return out


def extract_folder(root: Path, class_set: ClassSet, labels: dict) -> Path:
    """Return what extract-frames leaves: classes.yaml and images/ (no masks/ yet)."""
    rng = np.random.default_rng(2)
    items = [(s, rng.integers(0, 255, (*m.shape, 3)).astype(np.uint8), m)
             for s, m in labels.items()]
    write_dataset(root, class_set, items)
    for p in (root / "masks").iterdir():
        p.unlink()
    (root / "masks").rmdir()
    return root


def test_voc_colours_are_pascal_vocs():
    # Pascal VOC's published palette: 1 aeroplane, 2 bicycle, 3 bird, 15 person, 20 tv.
    assert voc_color(0) == (0, 0, 0)
    assert voc_color(1) == (128, 0, 0)
    assert voc_color(2) == (0, 128, 0)
    assert voc_color(3) == (128, 128, 0)
    assert voc_color(15) == (192, 128, 128)
    assert voc_color(20) == (0, 64, 128)


def test_package_layout(tmp_path):
    labels = masks(CAMVID)
    pkg = write_cvat_package(tmp_path / "cvat", CAMVID, labels.items(), tmp_path / "cvat.zip")
    lines = (pkg / "labelmap.txt").read_text().splitlines()
    assert "background:0,0,0::" in lines and "Road:128,64,128::" in lines
    assert (pkg / "ImageSets/Segmentation/default.txt").read_text().split() == list(labels)
    stem, mask = next(iter(labels.items()))
    color = cv2.imread(str(pkg / "SegmentationClass" / f"{stem}.png"))[:, :, ::-1]
    np.testing.assert_array_equal(color[mask == 3], np.tile([128, 64, 128], ((mask == 3).sum(), 1)))
    np.testing.assert_array_equal(color[:3, :5], np.zeros((3, 5, 3), np.uint8))
    # Instance masks: one instance per class present, all its pixels one VOC colour;
    # ignored pixels instance 0 (black).
    inst = cv2.imread(str(pkg / "SegmentationObject" / f"{stem}.png"))[:, :, ::-1]
    for cid in range(CAMVID.num_classes):
        assert len({tuple(c) for c in inst[mask == cid]}) == 1
    assert len({tuple(c) for c in inst[mask != 11]}) == len(np.unique(mask[mask != 11]))
    assert (inst[:3, :5] == 0).all()
    with zipfile.ZipFile(tmp_path / "cvat.zip") as zf:
        assert "labelmap.txt" in zf.namelist()
        assert f"SegmentationClass/{stem}.png" in zf.namelist()


@pytest.mark.parametrize("class_set", [CAMVID, ROAD], ids=["camvid", "background-class"])
@pytest.mark.parametrize("as_zip", [True, False], ids=["zip", "folder"])
def test_round_trip_gives_the_same_index_masks(tmp_path, class_set, as_zip):
    labels = masks(class_set)
    folder = extract_folder(tmp_path / "data", class_set, labels)
    pkg = write_cvat_package(folder / "cvat", class_set, labels.items(), tmp_path / "c.zip")
    result = import_cvat(tmp_path / "c.zip" if as_zip else pkg, folder)
    assert result["masks"] == len(labels) and not result["wrote_classes_yaml"]
    for stem, mask in labels.items():
        back = cv2.imread(str(folder / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(back, mask)
    # The export folder also reads directly as a dataset, with the same masks.
    if not as_zip:
        ds = FolderDataset(pkg, "all")
        assert [ds.name(i) for i in range(len(ds))] == list(labels)
        for i, mask in enumerate(labels.values()):
            np.testing.assert_array_equal(ds.load(i)[1], mask)


def test_background_class_gets_an_ignore_label(tmp_path):
    pkg = write_cvat_package(tmp_path / "cvat", ROAD, masks(ROAD).items())
    entries = read_labelmap(pkg / "labelmap.txt")
    assert entries[0] == ("ignore", (0, 0, 0))
    assert ("background", (70, 70, 70)) in entries


def test_export_colours_are_read_through_its_labelmap(tmp_path):
    """CVAT exports with its own label colours, as palette PNGs; names decide the ids."""
    labels = masks(CAMVID, n=1)
    stem, mask = next(iter(labels.items()))
    folder = extract_folder(tmp_path / "data", CAMVID, labels)
    export = tmp_path / "export"
    (export / "SegmentationClass").mkdir(parents=True)
    (export / "ImageSets/Segmentation").mkdir(parents=True)
    names = ["background", *reversed(CAMVID.names)]  # another order, other colours
    colours = [voc_color(i) for i in range(len(names))]
    (export / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + "".join(
        f"{n}:{r},{g},{b}::\n" for n, (r, g, b) in zip(names, colours, strict=True)))
    (export / "ImageSets/Segmentation/default.txt").write_text(stem + "\n")
    index_in_export = np.where(mask == 11, 0, len(CAMVID.names) - mask).astype(np.uint8)
    img = Image.fromarray(index_in_export, mode="P")
    img.putpalette([v for c in colours for v in c] + [0] * (768 - 3 * len(colours)))
    img.save(export / "SegmentationClass" / f"{stem}.png")
    import_cvat(export, folder)
    back = cv2.imread(str(folder / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, mask)


def test_unknown_colour_names_file_and_colour_and_writes_nothing(tmp_path):
    labels = masks(CAMVID)
    folder = extract_folder(tmp_path / "data", CAMVID, labels)
    pkg = write_cvat_package(folder / "cvat", CAMVID, labels.items())  # as extract-frames
    stem = list(labels)[1]
    path = pkg / "SegmentationClass" / f"{stem}.png"
    color = cv2.imread(str(path))
    color[5, 5] = (3, 2, 1)  # BGR of RGB (1, 2, 3)
    cv2.imwrite(str(path), color)
    with pytest.raises(DatasetProblems) as exc:
        import_cvat(pkg, folder)
    assert f"{path}: colours not in labelmap.txt: (1, 2, 3) (1 px)" in str(exc.value)
    assert len(exc.value.problems) == 1
    assert not (folder / "masks").exists()
    # Read directly as a dataset, the same colour is the same clear error.
    with pytest.raises(DatasetProblems, match=r"\(1, 2, 3\)"):
        check_dataset(pkg)


def test_import_problems(tmp_path, capsys):
    labels = masks(CAMVID)
    folder = extract_folder(tmp_path / "data", CAMVID, labels)
    pkg = write_cvat_package(tmp_path / "cvat", CAMVID, labels.items())
    text = (pkg / "labelmap.txt").read_text().replace("Car:", "Truck:")
    (pkg / "labelmap.txt").write_text(text)
    with pytest.raises(DatasetProblems, match="label 'Truck' is not one of the classes"):
        import_cvat(pkg, folder)
    (pkg / "labelmap.txt").write_text(text.replace("Truck:", "Car:") + "Bus:1,2::\n")
    with pytest.raises(DatasetProblems, match=r"labelmap.txt:14: expected 'name:r,g,b::'"):
        import_cvat(pkg, folder)
    (pkg / "labelmap.txt").write_text(text.replace("Truck:", "Car:"))
    assert main(["dataset", "import-cvat", str(pkg), "--into", str(folder)]) == 0
    assert main(["dataset", "import-cvat", str(pkg), "--into", str(folder)]) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["dataset", "import-cvat", str(pkg), "--into", str(folder), "--overwrite"]) == 0
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable zip"):
        import_cvat(tmp_path / "bad.zip", folder)


def test_import_without_classes_yaml_takes_the_labelmap(tmp_path):
    labels = masks(ROAD, n=1)
    folder = extract_folder(tmp_path / "data", ROAD, labels)
    (folder / "classes.yaml").unlink()
    pkg = write_cvat_package(tmp_path / "cvat", ROAD, labels.items())
    result = import_cvat(pkg, folder)
    assert result["wrote_classes_yaml"] and result["classes"] == list(ROAD.names)
    back = cv2.imread(str(folder / "masks" / f"{next(iter(labels))}.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, next(iter(labels.values())))


def test_black_class_moves_the_ignore_colour(tmp_path):
    dark = ClassSet("dark", ("night", "lamp"), ((0, 0, 0), (255, 255, 0)), 255)
    labels = masks(dark)
    folder = extract_folder(tmp_path / "data", dark, labels)
    pkg = write_cvat_package(folder / "cvat", dark, labels.items())
    entries = read_labelmap(pkg / "labelmap.txt")
    assert entries[0][0] == "background" and entries[0][1] not in dark.colors
    stem, mask = next(iter(labels.items()))
    color = cv2.imread(str(pkg / "SegmentationClass" / f"{stem}.png"))[:, :, ::-1]
    assert {tuple(c) for c in color[mask == 255]} == {entries[0][1]}
    import_cvat(pkg, folder)
    for stem, mask in labels.items():
        back = cv2.imread(str(folder / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(back, mask)


def test_export_with_images_and_subsets_is_a_dataset(tmp_path):
    """Exported with 'Save images' and Train/Validation subsets, inside a zip's top folder."""
    labels = masks(CAMVID, n=4)
    pkg = write_cvat_package(tmp_path / "top" / "task", CAMVID, labels.items())
    (pkg / "JPEGImages").mkdir()
    rng = np.random.default_rng(3)
    for stem, mask in labels.items():
        cv2.imwrite(str(pkg / "JPEGImages" / f"{stem}.jpg"),
                    rng.integers(0, 255, (*mask.shape, 3)).astype(np.uint8))
    stems = list(labels)
    sets = pkg / "ImageSets" / "Segmentation"
    (sets / "default.txt").unlink()
    (sets / "Train.txt").write_text("\n".join(stems[:3]) + "\n")
    (sets / "Validation.txt").write_text(stems[3] + "\n")
    ds = FolderDataset(pkg, "train")
    assert [ds.name(i) for i in range(len(ds))] == stems[:3]
    val = FolderDataset(pkg, "val")
    assert [val.name(i) for i in range(len(val))] == [stems[3]]
    # No classes.yaml beside it: the labelmap's classes, ignore id 255.
    assert val.class_set.names == CAMVID.names and val.class_set.ignore_index == 255
    expected = np.where(labels[stems[3]] == 11, 255, labels[stems[3]])
    np.testing.assert_array_equal(val.load(0)[1], expected)
    assert check_dataset(pkg).frames == {"train": 3, "val": 1}
    # The same export zipped with its folder on top imports as well.
    folder = extract_folder(tmp_path / "data", CAMVID, labels)
    with zipfile.ZipFile(tmp_path / "export.zip", "w") as zf:
        for path in pkg.rglob("*"):
            if path.is_file():
                zf.write(path, path.relative_to(pkg.parent).as_posix())
    assert import_cvat(tmp_path / "export.zip", folder)["masks"] == 4
