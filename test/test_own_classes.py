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

"""A dataset of your own with other classes: fine-tune, then every output uses them.

A CamVid-class checkpoint is fine-tuned on a tiny 5-class folder dataset (road, sidewalk,
vehicle = Car + Bicyclist, person, background); the result must carry those names and
colours into `canet segment-bag` (report, colour images) and the ROS node (colour mask),
with nothing else configured.
"""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_bag_helpers import camera_bag, image_array, read_bag, run_cli

from canet_ros.checkpoint import build_metadata, read_checkpoint, save_checkpoint
from canet_ros.classes import CAMVID, ClassSet
from canet_ros.data import EvalTransform, FolderDataset, write_dataset
from canet_ros.models import build_canet
from canet_ros.training import merge_config
from canet_ros.training.trainer import Trainer

MINE = ClassSet("mine", ("road", "sidewalk", "vehicle", "person", "background"),
                ((20, 200, 20), (200, 30, 30), (30, 30, 210), (250, 240, 0), (60, 60, 60)),
                255)
CLASS_MAP = "vehicle: [Car, Bicyclist]\nsidewalk: Pavement\nperson: Pedestrian\n"
SIZE = (64, 48)
# A distinct, noisy look per class so that a few steps can learn it.
LOOKS = np.array([[90, 90, 90], [180, 170, 150], [20, 40, 160], [200, 120, 90], [40, 120, 40]])


def own_frame(i: int):
    """Bands of the five classes in a frame-dependent order, a few ignored pixels."""
    rng = np.random.default_rng(100 + i)
    w, h = SIZE
    mask = np.zeros((h, w), np.uint8)
    order = rng.permutation(5)
    for band, cls in enumerate(order):
        mask[band * h // 5:(band + 1) * h // 5] = cls
    image = LOOKS[mask] + rng.normal(0, 12, (h, w, 3))
    mask[rng.random((h, w)) < 0.02] = MINE.ignore_index
    return f"f{i:03d}", np.clip(image, 0, 255).astype(np.uint8), mask


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    stems = [f"f{i:03d}" for i in range(8)]
    write_dataset(root / "data", MINE, (own_frame(i) for i in range(8)),
                  {"train": stems[:6], "val": stems[6:]})
    (root / "map.yaml").write_text(CLASS_MAP)
    torch.manual_seed(0)
    start = save_checkpoint(root / "start.pt", build_canet("mobilenetv2", 11),
                            build_metadata("mobilenetv2", CAMVID, input_size=SIZE))
    cfg = merge_config({}, {
        "dataset": "folder", "data_root": str(root / "data"), "init_weights": str(start),
        "class_map": str(root / "map.yaml"), "train_layers": "decoder", "steps": 24,
        "batch_size": 3, "lr": 3e-3, "crop_size": [48, 32], "scale_min": 1.0,
        "scale_max": 1.0, "workers": 0, "threads": 1, "val_every": 1000, "progress": False,
        "channels_last": False, "out_dir": str(root / "run"), "seed": 1})
    trainer = Trainer(cfg)
    # Training mode as built: fitting the merged rows runs the model in eval mode once.
    training = [m.training for m in trainer.bare_model.modules()]
    # (train() leaves the frozen context in eval mode: that is what training mode is here.)
    training = training == [m.training for m in trainer.bare_model.train().modules()]
    initial = copy.deepcopy(trainer.bare_model).eval()
    trainer.fit()
    return {"root": root, "start": start, "initial": initial, "trainer": trainer,
            "last": root / "run" / "last.pt", "training_at_start": training}


def _mean_loss(model, root) -> float:
    ds = FolderDataset(root / "data", "train",
                       EvalTransform([0.485, 0.456, 0.406], [0.229, 0.224, 0.225], SIZE))
    with torch.no_grad():
        losses = [torch.nn.functional.cross_entropy(model(x[None]), y[None].long(),
                                                    ignore_index=255) for x, y in ds]
    return float(torch.stack(losses).mean())


def test_finetune_lowers_the_loss_and_carries_the_new_classes(finetuned):
    blob = read_checkpoint(finetuned["last"])
    assert blob["class_names"] == list(MINE.names)
    assert [tuple(c) for c in blob["palette"]] == list(MINE.colors)
    assert blob["ignore_index"] == 255 and blob["num_classes"] == 5
    model = finetuned["trainer"].bare_model.eval()
    before, after = _mean_loss(finetuned["initial"], finetuned["root"]), _mean_loss(
        model, finetuned["root"])
    assert after < 0.75 * before, (before, after)
    # train_layers=decoder: the context backbone is exactly the starting checkpoint's.
    start = read_checkpoint(finetuned["start"])["state_dict"]
    for k, v in model.context.state_dict().items():
        assert torch.equal(v, start[f"context.{k}"].to(v.dtype)), k


def test_the_finetune_starts_its_merged_class_near_its_parts_combined(finetuned):
    from canet_ros.checkpoint import load_checkpoint
    from canet_ros.training.transfer import adapt_model, load_class_map, plan_transfer
    data = finetuned["trainer"].data
    start, _ = load_checkpoint(str(finetuned["start"]), map_location="cpu")
    ds = FolderDataset(finetuned["root"] / "data", "train",
                       EvalTransform(data.mean, data.std, SIZE))
    x = torch.stack([image for image, _ in ds])
    plan = plan_transfer(CAMVID.names, MINE.names,
                         load_class_map(finetuned["root"] / "map.yaml"))
    mean_rule = adapt_model(copy.deepcopy(start), plan).eval()  # no frames: the old rule
    with torch.no_grad():
        parts = torch.logsumexp(start.eval()(x)[:, [8, 10]], 1)  # Car, Bicyclist

        def error(model):
            return float((model(x)[:, 2] - parts).abs().mean())  # vehicle
        assert error(finetuned["initial"]) < 0.5 * error(mean_rule)
    # ...and the run still trains in training mode (BatchNorm statistics update).
    assert finetuned["training_at_start"]


def test_segment_bag_outputs_use_the_checkpoints_classes(finetuned, tmp_path, capsys):
    cam = "/cam/image_raw/compressed"
    bag = camera_bag(tmp_path / "rec", n=3, topic=cam)
    rc, _, err = run_cli([str(bag), "--out", str(tmp_path / "out"), "--checkpoint",
                          str(finetuned["last"]), "--topic", cam], capsys)
    assert rc == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["model"]["num_classes"] == 5
    assert report["class_names"] == list(MINE.names)
    out = read_bag(Path(report["output_bag"]))
    labels = [image_array(m) for _, m in out["/cam/segmentation/labels"]]
    colors = [image_array(m) for _, m in out["/cam/segmentation/color"]]
    assert len(labels) == len(colors) == 3
    palette = np.array(MINE.colors, np.uint8)
    for lab, col in zip(labels, colors, strict=True):
        assert lab.max() < 5
        np.testing.assert_array_equal(col, palette[lab])


def test_node_colours_come_from_the_checkpoint(ros, finetuned):
    from ros_helpers import Rig, as_array, image_msg

    rig = Rig(finetuned["last"])
    try:
        node = rig.node()
        got = rig.listen(node, "labels", "color")
        bgr = own_frame(9)[1][:, :, ::-1].copy()
        rig.send(node, image_msg(bgr))
        out = rig.wait_for(got)
        labels, color = as_array(out["labels"]), as_array(out["color"])
        assert labels.max() < 5 and len(np.unique(labels)) >= 3
        np.testing.assert_array_equal(color, np.array(MINE.colors, np.uint8)[labels])
    finally:
        rig.close()


def test_evaluate_scores_a_folder_dataset_with_its_own_classes(finetuned):
    from test_bag_helpers import hand_iou

    from canet_ros.checkpoint import CheckpointError
    from canet_ros.evaluation import evaluate_checkpoint

    data = finetuned["root"] / "data"
    result = evaluate_checkpoint(str(finetuned["last"]), "folder", str(data), "val")
    assert result["class_names"] == list(MINE.names) and result["frames"] == 2
    # Independently: the trained model's argmax on the two val frames, IoU by hand.
    model = finetuned["trainer"].bare_model.eval()
    blob = read_checkpoint(finetuned["last"])
    ds = FolderDataset(data, "val", EvalTransform(blob["mean"], blob["std"], SIZE))
    with torch.no_grad():
        preds = [model(x[None])[0].argmax(0).numpy() for x, _ in ds]
    _, miou, acc = hand_iou(preds, [y.numpy() for _, y in ds], 5, 255)
    assert result["miou"] == pytest.approx(miou, abs=1e-6)
    assert result["global_acc"] == pytest.approx(acc, abs=1e-6)
    with pytest.raises(CheckpointError, match=r"start\.pt.*11 classes.*has 5: \['road'"):
        evaluate_checkpoint(str(finetuned["start"]), "folder", str(data), "val")


def test_replay_mixes_original_frames_with_labels_mapped_to_the_new_classes(finetuned, tmp_path):
    from test_training import make_camvid_tree

    from canet_ros.data import build_dataset
    from canet_ros.training.data_setup import build_data

    camvid = make_camvid_tree(tmp_path / "camvid", frames=6)  # classes Sky, Building, Road, Car
    root = finetuned["root"]
    cfg = merge_config({}, {
        "dataset": "folder", "data_root": str(root / "data"),
        "init_weights": str(finetuned["start"]), "class_map": str(root / "map.yaml"),
        "replay_dataset": "camvid", "replay_root": str(camvid), "replay_split": "train+val",
        "replay_exclude": ["0016E5"], "replay_ratio": 0.5, "val_sets": [], "cache": False})
    data = build_data(cfg, verbose=False)
    # 6 own frames + the 6 CamVid frames left after the exclusion, of which an epoch
    # draws round(0.5 * 6) = 3.
    assert len(data.train) == 12 and data.train.count(1) == 6 and data.train.per_epoch == 3
    assert all(data.train.name(i).startswith("0006R0") for i in range(6, 12))
    camvid_ds = build_dataset("camvid", camvid, "train")
    for i in range(6, 12):
        _, mapped = data.train.load(i)
        raw = camvid_ds.load(camvid_ds.pairs.index(data.train.pairs[i]))[1]
        # By hand: Road -> road (0), Car -> vehicle (2); Sky, Building, void -> ignore (255).
        expected = np.full_like(raw, 255)
        expected[raw == 3], expected[raw == 8] = 0, 2
        np.testing.assert_array_equal(mapped, expected)
    assert set(np.unique(mapped)) <= {0, 2, 255}


def test_missing_replay_data_says_how_to_train_without_it(finetuned, tmp_path):
    from canet_ros.errors import DatasetError
    from canet_ros.training.data_setup import build_data

    root = finetuned["root"]
    cfg = merge_config({}, {
        "dataset": "folder", "data_root": str(root / "data"), "replay_dataset": "camvid",
        "replay_root": str(tmp_path / "no_camvid"), "replay_ratio": 1.0, "val_sets": []})
    with pytest.raises(DatasetError, match=r"no_camvid.*--replay-ratio 0"):
        build_data(cfg, verbose=False)


def test_a_replay_run_resumed_midway_equals_the_straight_run(finetuned, tmp_path):
    """The replay draws follow the stored RNG, so stop + resume trains on the same frames."""
    from test_training import make_camvid_tree

    root = finetuned["root"]
    camvid = make_camvid_tree(tmp_path / "camvid", frames=6)
    base = {"dataset": "folder", "data_root": str(root / "data"),
            "init_weights": str(finetuned["start"]), "class_map": str(root / "map.yaml"),
            "replay_dataset": "camvid", "replay_root": str(camvid), "replay_split": "train",
            "replay_ratio": 0.5, "steps": 6, "batch_size": 3, "lr": 3e-3,
            "crop_size": [48, 32], "scale_min": 1.0, "scale_max": 1.0, "workers": 0,
            "threads": 1, "val_sets": [], "progress": False, "channels_last": False,
            "seed": 2, "cache": False}
    Trainer(merge_config({}, {**base, "out_dir": str(tmp_path / "straight")})).fit()
    split = {**base, "out_dir": str(tmp_path / "split")}
    Trainer(merge_config({}, {**split, "max_steps_this_run": 4})).fit()
    Trainer(merge_config({}, {**split, "resume": str(tmp_path / "split" / "last.pt")})).fit()
    straight = read_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = read_checkpoint(tmp_path / "split" / "last.pt")
    assert resumed["train_state"]["global_step"] == straight["train_state"]["global_step"] == 6
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
