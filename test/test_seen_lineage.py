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

"""seen_in_training through --init-weights lineages and a dataset folder whose split moved."""
from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import torch
from test_own_dataset import THREE, item
from test_training_holdout import make_drives, tiny

from canet_ros.checkpoint import build_metadata, read_checkpoint, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.cli import main as canet_main
from canet_ros.data import write_dataset
from canet_ros.evaluation import evaluate_checkpoint, seen_in_training
from canet_ros.training import merge_config
from canet_ros.training.config import TrainConfig
from canet_ros.training.data_setup import build_data
from canet_ros.training.lineage import holdout_warning, run_lineage
from canet_ros.training.trainer import Trainer

# A drive the bundled model trained on (CamVid train, MODEL_CARD: all 367 train frames).
TRAIN_0006 = [Path(f"cv/train/0006R0_{i:05d}.png") for i in range(4)]
VAL_0016 = [Path(f"cv/val/0016E5_{i:05d}.png") for i in range(3)]


def _blank_checkpoint(path: Path, train_args: dict) -> Path:
    """Write a checkpoint as made before lineages were recorded; only its metadata matters."""
    meta = build_metadata("mobilenetv2", CAMVID, train_args=train_args)
    return save_checkpoint(path, torch.nn.Linear(1, 1), meta)


# -- the record, by hand ----------------------------------------------------------------------
def test_frames_the_starting_weights_trained_on_count_as_seen():
    own = {"dataset": "camvid", "train_split": "train+val", "holdout": "0006R0",
           "init_weights": "default"}
    # The start trained on CamVid val only; its own start (recorded) on train.
    lineage = {"start": {"checkpoint": "../a/best.pt",
                         "train_args": {"dataset": "camvid", "train_split": "val"},
                         "lineage": {"start": {"checkpoint": "x.pt", "train_args": {
                             "dataset": "camvid", "train_split": "train",
                             "train_include": ["0006R0_00001"]}, "lineage": {}}}}}
    # The run itself: val (3), not 0006R0; the start: val; its start: 0006R0_00001 only.
    assert seen_in_training(own, TRAIN_0006 + VAL_0016, None, lineage) == 3 + 1
    assert seen_in_training(own, TRAIN_0006, None, lineage) == 1
    # An empty record is a run started from scratch: nothing more than its own frames.
    assert seen_in_training(own, TRAIN_0006, None, {}) == 0


def test_a_checkpoint_without_the_record_is_traced_through_its_init_weights(tmp_path):
    start = _blank_checkpoint(tmp_path / "a" / "a.pt",
                              {"dataset": "camvid", "train_split": "val"})
    run = tmp_path / "run"
    own = {"dataset": "camvid", "train_split": "train", "holdout": "0006R0",
           "init_weights": os.path.relpath(start, run)}
    assert seen_in_training(own, TRAIN_0006 + VAL_0016, run) == 3  # the start's val
    start.unlink()  # gone: only the run's own frames are known
    assert seen_in_training(own, TRAIN_0006 + VAL_0016, run) == 0
    # The bundled model (default) trained on CamVid train, 0006R0 included.
    assert seen_in_training({**own, "init_weights": "default"}, TRAIN_0006, run) == 4
    # A checkpoint naming itself as its start (a run begun from its own best.pt) ends.
    loop = _blank_checkpoint(tmp_path / "loop" / "best.pt", {
        "dataset": "camvid", "train_split": "val", "init_weights": "best.pt"})
    args = read_checkpoint(loop)["train_args"]
    assert seen_in_training(args, VAL_0016 + TRAIN_0006, loop.parent) == 3


def test_a_start_without_a_training_record_claims_no_frames(tmp_path):
    # An imported or hand-made checkpoint: no train_args, so nothing known, not "CamVid
    # train" by default. The run itself trained on val; TRAIN_0006 is all train.
    own = {"dataset": "camvid", "train_split": "val"}
    recorded = {"start": {"checkpoint": "imported.pt", "train_args": {}, "lineage": {}}}
    assert seen_in_training(own, TRAIN_0006, None, recorded) == 0
    imported = _blank_checkpoint(tmp_path / "imported.pt", {})
    traced = {**own, "init_weights": str(imported)}  # no record: traced through the file
    assert seen_in_training(traced, TRAIN_0006 + VAL_0016, tmp_path) == 3  # own val only


def test_a_chain_made_before_the_record_is_traced_when_the_run_starts(tmp_path):
    # default (CamVid train) -> A -> B -> this run; A and B carry no lineage metadata.
    a = _blank_checkpoint(tmp_path / "a" / "a.pt", {
        "dataset": "camvid", "train_split": "val", "train_include": ["0016E5_00001"],
        "init_weights": "default"})
    b = _blank_checkpoint(tmp_path / "b" / "b.pt", {
        "dataset": "camvid", "train_split": "val", "train_include": ["0016E5_00002"],
        "init_weights": "../a/a.pt"})
    assert "lineage" not in read_checkpoint(a) and "lineage" not in read_checkpoint(b)
    run = tmp_path / "run"
    record = run_lineage(TrainConfig(init_weights=str(b)), None, run)
    shutil.rmtree(tmp_path / "a")  # the record holds the chain once its files are gone
    shutil.rmtree(tmp_path / "b")
    own = {"dataset": "camvid", "train_split": "val", "train_include": ["0016E5_00000"],
           "init_weights": "../b/b.pt"}
    # The run: 0016E5_00000; B: _00002; A: _00001; default: the 4 train frames.
    assert seen_in_training(own, TRAIN_0006 + VAL_0016, run, record) == 1 + 1 + 1 + 4
    assert seen_in_training(own, TRAIN_0006, run, record) == 4


def test_cvat_frames_beside_the_export_count_as_seen(tmp_path):
    # CVAT "Save images" off: <parent>/<export>/ with the frames in <parent>/images/. The
    # run was made elsewhere (its data_root is not here); its record names the export.
    for folder in ("site/my_export", "site/images", "other/my_camera", "other/images"):
        (tmp_path / folder).mkdir(parents=True)
    frames = [tmp_path / "site" / "images" / f"{s}.jpg" for s in ("f1", "f2")]
    frames.append(tmp_path / "other" / "images" / "f1.jpg")  # beside another folder
    for frame in frames:
        frame.write_bytes(b"")
    args = {"dataset": "folder", "data_root": "/gone/my_export", "train_split": "train"}
    lineage = {"frames": {"folder": "my_export", "stems": ["f1"]}}
    assert seen_in_training(args, frames, None, lineage) == 1  # site/images/f1 only
    assert seen_in_training(args, frames[:1], None, lineage) == 1


def test_a_start_that_saw_part_of_the_held_out_drive_is_warned_about(tmp_path):
    drives = make_drives(tmp_path / "camvid")  # 0006R0: 3 frames, all in train
    start = _blank_checkpoint(tmp_path / "start.pt", {
        "dataset": "camvid", "train_split": "train", "train_include": ["0006R0_00001"]})
    cfg = tiny(drives, tmp_path / "run", init_weights=str(start))
    data = build_data(cfg, verbose=False)
    record = run_lineage(cfg, data, tmp_path / "run")
    assert holdout_warning(cfg, data, record, tmp_path / "run") == (
        f"warning: the starting weights ({start}) trained on 1 of the 3 held-out frames: "
        f"the held-out score is not a new-camera score")
    # A start that saw none of the drive's frames is no warning.
    _blank_checkpoint(start, {"dataset": "camvid", "train_split": "val"})
    record = run_lineage(cfg, data, tmp_path / "run")
    assert holdout_warning(cfg, data, record, tmp_path / "run") is None


# -- a run started from --init-weights --------------------------------------------------------
def test_init_weights_lineage_survives_resume_and_export(tmp_path, capsys):
    drives = make_drives(tmp_path / "camvid")  # 0006R0: 3 frames, all in train
    # The start trains on CamVid train: every 0006R0 frame.
    Trainer(tiny(drives, tmp_path / "a", epochs=1, train_split="train", holdout=None)).fit()
    start_args = read_checkpoint(tmp_path / "a" / "last.pt")["train_args"]
    capsys.readouterr()
    run = tmp_path / "b"
    Trainer(tiny(drives, run, epochs=1, init_weights=str(tmp_path / "a" / "last.pt"))).fit()
    out = capsys.readouterr().out
    result = evaluate_checkpoint(str(run / "best.pt"), "camvid", str(drives), None,
                                 holdout="0006R0", resolution=(64, 48))
    assert (result["frames"], result["seen_in_training"]) == (3, 3)
    assert (f"warning: the starting weights ({tmp_path / 'a' / 'last.pt'}) trained on 3 of "
            f"the 3 held-out frames: the held-out score is not a new-camera score") in out
    meta = read_checkpoint(run / "best.pt")
    start = meta["lineage"]["start"]
    assert start["checkpoint"] == "../a/last.pt" and start["train_args"] == start_args
    assert start["lineage"] == {} and set(start) == {"checkpoint", "train_args", "lineage"}
    assert "lineage" not in meta["train_args"]
    # The record stays when the start is gone, through a resume and `canet export`.
    shutil.rmtree(tmp_path / "a")
    Trainer(tiny(drives, run, epochs=2, resume=str(run / "last.pt"),
                 init_weights=str(tmp_path / "a" / "last.pt"))).fit()
    assert read_checkpoint(run / "last.pt")["lineage"]["start"] == start
    shipped = tmp_path / "ship" / "model.pt"
    shipped.parent.mkdir()
    assert canet_main(["export", "--format", "checkpoint", "--checkpoint",
                       str(run / "best.pt"), "--out", str(shipped)]) == 0
    assert read_checkpoint(shipped)["lineage"] == meta["lineage"]


# -- a dataset folder whose positional split moved ---------------------------------------------
def test_folder_run_records_its_training_stems(tmp_path):
    root = tmp_path / "my_camera"
    write_dataset(root, THREE, [item(i) for i in range(1, 7)])  # frame_01 .. frame_06
    # Every 5th by name to val: frame_05; the run trains on the other five.
    values = {"dataset": "folder", "data_root": str(root), "steps": 1, "batch_size": 2,
              "out_dir": str(tmp_path / "run"), "crop_size": [16, 12], "workers": 0,
              "threads": 1, "progress": False, "val_sets": [], "channels_last": False}
    Trainer(merge_config({}, values)).fit()
    ckpt = tmp_path / "run" / "last.pt"
    # One more, earlier frame labelled: sorted 00..06, val is now frame_04 (trained on);
    # train is 00, 01, 02, 03, 05, 06, of which 00 is new and 05 was val.
    write_dataset(root, THREE, [item(0)], overwrite=True)
    for split, frames, seen in (("val", 1, 1), ("train", 6, 4)):
        result = evaluate_checkpoint(str(ckpt), "folder", str(root), split)
        assert (result["frames"], result["seen_in_training"]) == (frames, seen), split
    lineage = read_checkpoint(ckpt)["lineage"]
    assert lineage == {"frames": {"folder": "my_camera", "stems": [
        "frame_01", "frame_02", "frame_03", "frame_04", "frame_06"]}}
    assert str(tmp_path) not in repr(lineage)
    # Resumed on the grown folder: the frames of both parts of the run are recorded.
    Trainer(merge_config({}, {**values, "steps": 4, "resume": str(ckpt)})).fit()
    stems = read_checkpoint(ckpt)["lineage"]["frames"]["stems"]
    assert stems == [f"frame_{i:02d}" for i in range(7)]
    # A copy of the checkpoint and of the folder (same name) elsewhere: still counted.
    copy = tmp_path / "elsewhere"
    shutil.copytree(root, copy / "my_camera")
    shutil.copy(ckpt, copy / "last.pt")
    result = evaluate_checkpoint(str(copy / "last.pt"), "folder", str(copy / "my_camera"),
                                 "val")
    assert result["seen_in_training"] == 1
    renamed = shutil.copytree(root, tmp_path / "other_camera")
    result = evaluate_checkpoint(str(copy / "last.pt"), "folder", str(renamed), "val")
    assert result["seen_in_training"] == 0


def test_a_thousand_stems_stay_small():
    stems = [f"{1700000000 + i}_{123456789 + i:09d}" for i in range(1000)]  # extract-frames'
    size = len(pickle.dumps({"frames": {"folder": "my_camera", "stems": stems}}))
    assert size < 32 * 1024  # ~25 bytes a frame
