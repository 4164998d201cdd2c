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

"""Hostile names and values in and around segment-bag's inputs.

Nonsense topic entries and alias bombs in metadata.yaml, bags named like OUTDIR's own
files, and names too long for the file system.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from test_bag_helpers import camera_bag, read_bag, shared_engine

from canet_ros.bag import BagError, RankInfo, SegmentOptions, run_folder, segment_bag
from canet_ros.bag.distributed import RANKS_DIR, output_names
from canet_ros.bag.reader import COMPRESSED, InputBag, detect_format

CAM = "/cam/image_raw/compressed"
GT = "/cam/ground_truth"
NAME_MAX = 255  # Linux's limit on one file name, in bytes (os.pathconf PC_NAME_MAX)


def _edit_metadata(folder: Path, edit) -> None:
    meta = folder / "metadata.yaml"
    doc = yaml.safe_load(meta.read_text())
    edit(doc["rosbag2_bagfile_information"])
    meta.write_text(yaml.safe_dump(doc))


def _alias_bomb(depth: int) -> str:
    """YAML of ``depth`` nested aliases, 9 items a level: 9**depth strings from ~300 bytes."""
    text = "&b0 [" + ",".join(['"lol"'] * 9) + "]"
    for i in range(1, depth):
        text = f"&b{i} [{text}," + ",".join([f"*b{i - 1}"] * 8) + "]"
    return text


def _set_raw(folder: Path, key: str, yaml_text: str) -> None:
    meta = folder / "metadata.yaml"
    lines = [line for line in meta.read_text().splitlines() if not line.startswith(f"  {key}:")]
    meta.write_text("\n".join(lines + [f"  {key}: {yaml_text}"]) + "\n")


# -- A: topic entries of the wrong kind --------------------------------------------------------

WRONG_KINDS = [("name", ["a"], "topic name"), ("type", ["x"], "message type")]


@pytest.mark.parametrize("field,value,what", WRONG_KINDS + [("count", "many", "message count")])
def test_a_topic_entry_of_the_wrong_kind_is_salvaged_like_other_bad_metadata(
        tmp_path, field, value, what):
    folder = camera_bag(tmp_path / "rec", n=3, topic=CAM)

    def edit(info):
        entry = info["topics_with_message_count"][0]
        if field == "count":
            entry["message_count"] = value
        else:
            entry["topic_metadata"][field] = value
    _edit_metadata(folder, edit)
    with InputBag(folder) as bag:  # read from the storage file, as rosbags wrote it
        assert bag.topics()[CAM].msgtype == COMPRESSED and bag.topics()[CAM].count == 3
        assert len(list(bag.messages(CAM))) == 3
        assert str(folder / "metadata.yaml") in bag.damage.cause and what in bag.damage.cause
    with pytest.raises(BagError) as refused:
        InputBag(folder, salvage=False).open_reader()
    message = str(refused.value)
    assert "\n" not in message and str(folder / "metadata.yaml") in message
    assert f"{what} {value!r}" in message and "--no-salvage" in message


# -- B: alias bombs ---------------------------------------------------------------------------

def test_short_repr_is_repr_for_small_values_and_bounded_for_a_bomb():
    from canet_ros.bag.reader import short_repr

    for value in ("foo", ["mcap"], 42, {"a": 1}, None):
        assert short_repr(value) == repr(value)
    bomb = yaml.safe_load(_alias_bomb(9))  # a full repr would be ~3 GB
    assert len(short_repr(bomb)) <= 80 and short_repr(bomb).startswith("[[")


def test_an_alias_bomb_as_storage_identifier_gives_a_short_message(tmp_path):
    folder = camera_bag(tmp_path / "rec", n=1, topic=CAM)
    _set_raw(folder, "storage_identifier", _alias_bomb(6))  # repr ~4 MB
    with pytest.raises(BagError) as refused:
        detect_format(folder)
    message = str(refused.value)
    assert "unknown storage format [[" in message and "metadata.yaml" in message
    assert len(message) < len(str(folder)) + 200


def test_an_alias_bomb_as_compression_format_is_salvaged_with_a_short_cause(tmp_path):
    # rosbags quotes the whole value when it refuses a compression format it does not know.
    folder = camera_bag(tmp_path / "rec", n=2, topic=CAM)
    _set_raw(folder, "compression_mode", "message")
    _set_raw(folder, "compression_format", _alias_bomb(6))
    with InputBag(folder) as bag:
        assert len(list(bag.messages(CAM))) == 2
        assert "compression_format [[" in bag.damage.cause
        assert len(bag.damage.cause) < len(str(folder)) + 200
    with pytest.raises(BagError) as refused:
        InputBag(folder, salvage=False).open_reader()
    assert len(str(refused.value)) < 2 * len(str(folder)) + 300


@pytest.mark.parametrize("listing", ["bomb", "long"])
def test_a_file_list_that_cannot_name_files_reads_the_folders_own_files(tmp_path, listing):
    # An alias bomb made one name of megabytes, a 300-byte name made is_file() raise
    # ENAMETOOLONG: both escaped as a raw OSError instead of salvaging the bag.
    folder = camera_bag(tmp_path / "rec", n=3, topic=CAM)
    long_name = "x" * 300 + ".mcap"
    _edit_metadata(folder, lambda info: info.update(relative_file_paths=[long_name]))
    if listing == "bomb":  # one line, so that the rest of the file stays valid YAML
        _set_raw(folder, "relative_file_paths", _alias_bomb(6))
    with InputBag(folder) as bag:
        assert len(list(bag.messages(CAM))) == 3
        assert bag.damage is not None


# -- C: bags named like OUTDIR's own files ----------------------------------------------------

def _bare_mcap(tmp_path: Path, dest: Path, n: int) -> None:
    src = camera_bag(tmp_path / "src" / dest.stem.replace(".", "_"), n=n, topic=CAM,
                     gt_topic=GT)
    shutil.copy(src / f"{src.name}.mcap", dest)


def _own_files(tmp_path: Path, engine) -> set[str]:
    """Return what a folder run writes at OUTDIR's top level, seen in a run of plain names."""
    bags = tmp_path / "plain"
    bags.mkdir()
    camera_bag(bags / "a", n=1, topic=CAM, gt_topic=GT)
    out = tmp_path / "plain_out"
    run_folder(bags, SegmentOptions(bags, out, gt_topic=GT), lambda: engine, RankInfo())
    return {p.name for p in out.iterdir()} - {"a"}


def test_bags_named_like_outdirs_own_files_get_other_folders(tmp_path):
    engine = shared_engine()
    own = _own_files(tmp_path, engine)
    assert {"report.json", "report.md", "legend.png", ".canet_segment_bag"} <= own
    folder = tmp_path / "bags"
    folder.mkdir()
    for name in sorted(own):
        _bare_mcap(tmp_path, folder / f"{name}.mcap", n=2)
    camera_bag(folder / "report.md", n=2, topic=CAM, gt_topic=GT)  # a bag folder, too
    camera_bag(folder / "b", n=2, topic=CAM, gt_topic=GT)
    out = tmp_path / "out"
    merged = run_folder(folder, SegmentOptions(folder, out, gt_topic=GT), lambda: engine,
                        RankInfo())
    bags = len(own) + 2
    assert merged["failed"] == [] and merged["frames"] == 2 * bags
    assert json.loads((out / "report.json").read_text()) == merged
    dirs = [entry["outdir"] for entry in merged["bags"]]
    assert len(set(dirs)) == bags and not own & set(dirs)
    for entry in merged["bags"]:
        report = json.loads((out / entry["outdir"] / "report.json").read_text())
        assert report["input"] == str(Path(entry["bag"]).resolve()) and report["frames"] == 2


def test_output_names_keep_clear_of_the_folders_a_rerun_puts_beside_a_bag(tmp_path):
    # A torchrun rerun writes a bag's folder x as x.partial, keeping the old one as x.old.
    names = ("x.mcap", "x.partial.mcap", "x.old.db3", f"{RANKS_DIR}.mcap", "report.json.db3")
    for name in names:
        (tmp_path / name).write_bytes(b"")
    chosen = output_names(sorted(tmp_path.iterdir()))
    places = [{n, n + ".partial", n + ".old"} for n in chosen.values()]
    assert sum(map(len, places)) == len(set().union(*places))
    assert RANKS_DIR not in chosen.values() and "report.json" not in chosen.values()
    assert chosen[tmp_path / "x.mcap"] == "x"  # the first keeps its plain name


# -- D: names too long for the file system ----------------------------------------------------

def _long_bag(tmp_path: Path, stem: str, n: int = 2) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    dest = tmp_path / "in" / f"{stem}.mcap"
    assert len(os.fsencode(dest.name)) <= NAME_MAX
    _bare_mcap(tmp_path, dest, n)
    return dest


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_bag_with_a_255_byte_name_is_segmented_under_a_shorter_name(tmp_path, storage):
    bag = _long_bag(tmp_path, "c" * (NAME_MAX - len(".mcap")))
    report = segment_bag(shared_engine(), SegmentOptions(bag, tmp_path / "out", topic=CAM,
                                                         storage=storage))
    assert report["error"] is None and report["frames"] == 2
    out_bag = Path(report["output_bag"])
    assert out_bag.parent == (tmp_path / "out").resolve() and out_bag.name.endswith("_segmented")
    assert out_bag.name.startswith("c" * 100) and len(os.fsencode(out_bag.name)) <= NAME_MAX
    assert all(len(os.fsencode(p.name)) <= NAME_MAX for p in out_bag.iterdir())
    assert len(read_bag(out_bag)["/cam/segmentation/labels"]) == 2


def test_shortened_names_are_deterministic_unique_and_whole_characters(tmp_path):
    from canet_ros.bag.pipeline import output_bag_name

    long_a, long_b = "é" * 124 + "a", "é" * 124 + "b"  # 249 bytes each, differing at the end
    paths = []
    for stem in (long_a, long_b):
        path = tmp_path / f"{stem}.mcap"
        path.write_bytes(b"")
        paths.append(path)
    names = [output_bag_name(p) for p in paths]
    assert names == [output_bag_name(p) for p in paths] and names[0] != names[1]
    for name in names:
        raw = os.fsencode(name)
        assert len(raw) + len(".db3-journal") <= NAME_MAX
        assert raw.decode("utf-8").startswith("é" * 50)  # cut between characters, not in one
    folder_names = output_names(paths)
    assert len(set(folder_names.values())) == 2
    assert all(len(os.fsencode(n + ".partial")) <= NAME_MAX for n in folder_names.values())


def test_an_outdir_too_long_for_any_sqlite3_bag_is_refused_before_the_model(tmp_path):
    from canet_ros.bag.pipeline import BagJob

    bag = camera_bag(tmp_path / "rec", n=1, topic=CAM)
    deep = tmp_path / ("d" * 200) / ("e" * 200) / ("f" * 200)
    deep.mkdir(parents=True)
    out = deep / "out"
    assert len(os.fsencode(str(out))) + len("/rec_segmented/rec_segmented.db3") > 504
    with pytest.raises(BagError, match="--storage mcap"):
        BagJob(SegmentOptions(bag, out, topic=CAM, storage="sqlite3"))
    BagJob(SegmentOptions(bag, out, topic=CAM)).close()  # MCAP has no such limit
