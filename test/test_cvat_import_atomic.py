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

"""import-cvat --overwrite on a full disk: the labelled masks already there stay whole.

A full disk is made real where it can be: the Nth mask file is opened on /dev/full, whose
writes fail with ENOSPC from the kernel, as a full file system's do.
"""
from __future__ import annotations

import builtins
import errno
import os
import shutil
from pathlib import Path

import pytest
from test_cvat import CAMVID, extract_folder, masks

import canet_ros.data.cvat_import as cvat_import
import canet_ros.image_files as image_files
from canet_ros.cli import main
from canet_ros.data import DatasetError, import_cvat, write_cvat_package

FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not FULL.exists(), reason="needs Linux's /dev/full")


def labelled(tmp_path: Path, n: int = 5) -> tuple[Path, Path, dict]:
    """Return a dataset labelled once and a corrected export of all its frames.

    Return (dataset, corrected export, {mask name: bytes before the re-import}).
    """
    first = masks(CAMVID, n=n)
    data = extract_folder(tmp_path / "data", CAMVID, first)
    import_cvat(write_cvat_package(tmp_path / "cvat1", CAMVID, first.items()), data)
    corrected = {s: (m + 1) % CAMVID.num_classes for s, m in first.items()}  # every mask new
    export = write_cvat_package(tmp_path / "cvat2", CAMVID, corrected.items())
    before = {p.name: p.read_bytes() for p in (data / "masks").iterdir()}
    assert len(before) == n
    return data, export, before


def entries(folder: Path) -> set:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def disk_full_at(monkeypatch, nth: int) -> None:
    """Open the ``nth`` PNG that image_files writes on /dev/full: its writes get ENOSPC."""
    calls = {"png": 0}

    def opener(name, mode="r", *args, **kwargs):
        if "w" in mode and str(name).endswith(".png"):
            calls["png"] += 1
            if calls["png"] == nth:
                return builtins.open(FULL, mode, *args, **kwargs)
        return builtins.open(name, mode, *args, **kwargs)

    monkeypatch.setattr(image_files, "open", opener, raising=False)


@needs_dev_full
def test_full_disk_leaves_every_earlier_mask_as_it_was(tmp_path, monkeypatch):
    data, export, before = labelled(tmp_path)
    listing = entries(data)
    disk_full_at(monkeypatch, 3)
    with pytest.raises(DatasetError) as exc:
        import_cvat(export, data, overwrite=True)
    text = str(exc.value)
    assert text.startswith(f"{data}: ") and "no space left on device" in text
    assert "\n" not in text and "canet_cvat_" not in text and "Errno" not in text
    assert cvat_import.STAGING_DIR not in text  # removed by the time it is read
    assert {p.name: p.read_bytes() for p in (data / "masks").iterdir()} == before
    assert entries(data) == listing  # no staging folder, nothing else left behind


@needs_dev_full
def test_full_disk_through_the_command_is_one_line(tmp_path, monkeypatch, capsys):
    data, export, before = labelled(tmp_path)
    disk_full_at(monkeypatch, 1)
    rc = main(["dataset", "import-cvat", str(export), "--into", str(data), "--overwrite"])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert f"error: {data}: " in err and "no space left on device" in err
    assert {p.name: p.read_bytes() for p in (data / "masks").iterdir()} == before


def test_a_failed_replace_leaves_each_mask_old_or_new(tmp_path, monkeypatch):
    data, export, before = labelled(tmp_path)
    clean = tmp_path / "clean"  # what the import writes when nothing fails
    shutil.copytree(data, clean)
    import_cvat(export, clean, overwrite=True)
    after = {p.name: p.read_bytes() for p in (clean / "masks").iterdir()}
    assert all(after[name] != before[name] for name in before)
    real, calls = os.replace, {"n": 0}

    def replace(src, dst):
        if Path(dst).parent == data / "masks":
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(DatasetError, match="no space left on device") as exc:
        import_cvat(export, data, overwrite=True)
    assert str(exc.value).startswith(f"{data}: ")
    now = {p.name: p.read_bytes() for p in (data / "masks").iterdir()}
    assert set(now) == set(before)
    names = sorted(before)
    assert [now[n] == after[n] for n in names] == [True, True, False, False, False]
    assert [now[n] == before[n] for n in names] == [False, False, True, True, True]
    assert not (data / cvat_import.STAGING_DIR).exists()


def test_the_staging_folder_a_killed_import_left_is_cleared(tmp_path):
    data, export, _ = labelled(tmp_path, n=2)
    left = data / cvat_import.STAGING_DIR
    left.mkdir()
    (left / "1700000000_000000000.png").write_bytes(b"cut short by kill -9")
    import_cvat(export, data, overwrite=True)
    assert not left.exists()
    assert image_files.read_image(data / "masks" / "1700000000_000000000.png", 0) is not None
