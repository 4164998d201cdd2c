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

"""A resume may not change the run's network: backbone, trained layers, classes.

Each used to fail inside load_state_dict (a 60-line traceback) or the optimiser's
load_state_dict only after config.yaml had been rewritten with the other value (and a new
TensorBoard file written), so ``--config RUN/config.yaml`` then trained the wrong network.
Runs are the tiny synthetic ones of test_training_resume.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from test_training import make_camvid_tree
from test_training_resume import flags, isolated  # noqa: F401 (a fixture)

from canet_ros.checkpoint import read_checkpoint
from canet_ros.classes import ClassSet
from canet_ros.cli import main as canet_main
from canet_ros.data import write_dataset


def _files(run: Path) -> dict:
    """Every file of the run folder (tb/ included) with its bytes."""
    return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def _stopped_run(root: Path, run: Path, *extra: str) -> Path:
    assert canet_main(flags(root, run, "--max-steps-this-run", "1", *extra)) == 0
    return run / "last.pt"


def _refused(capsys, args: list, run: Path) -> str:
    before = _files(run)
    capsys.readouterr()
    assert canet_main(args) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("canet train: error: "), err
    assert _files(run) == before  # config.yaml, log.csv, tb/, last.pt as they were
    return lines[0]


def test_another_backbone_is_refused_before_anything_is_written(isolated, capsys):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    last = _stopped_run(root, isolated / "run")
    assert read_checkpoint(last)["backbone"] == "mobilenetv2"  # the default
    err = _refused(capsys, ["train", "--resume", str(last), "--backbone", "resnet18"],
                   isolated / "run")
    assert str(last) in err and "mobilenetv2" in err and "resnet18" in err
    assert "--backbone mobilenetv2" in err  # the way out
    assert "Traceback" not in err and "size mismatch" not in err


def test_a_config_files_backbone_is_refused_too(isolated, capsys):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    last = _stopped_run(root, isolated / "run")
    recipe = isolated / "other.yaml"
    recipe.write_text("backbone: resnet18\n")
    err = _refused(capsys, ["train", "--resume", str(last), "--config", str(recipe)],
                   isolated / "run")
    assert "mobilenetv2" in err and "resnet18" in err


def test_the_runs_own_backbone_given_again_resumes(isolated):  # noqa: F811
    root = make_camvid_tree(isolated / "camvid")
    last = _stopped_run(root, isolated / "run")
    assert canet_main(["train", "--resume", str(last), "--backbone", "mobilenetv2"]) == 0
    done = read_checkpoint(last)
    assert done["backbone"] == "mobilenetv2" and done["train_state"]["global_step"] == 4


def test_other_train_layers_are_refused_before_anything_is_written(  # noqa: F811
        isolated, capsys):  # noqa: F811
    # The optimiser's saved state holds the run's trained parameters only: another set
    # failed in optimizer.load_state_dict after config.yaml had been rewritten.
    root = make_camvid_tree(isolated / "camvid")
    last = _stopped_run(root, isolated / "run")
    err = _refused(capsys, ["train", "--resume", str(last), "--train-layers", "decoder"],
                   isolated / "run")
    assert "--train-layers all" in err and "decoder" in err


def _folder(root: Path, names: tuple) -> Path:
    """Write a dataset folder with classes ``names`` (4 train frames, 1 val frame, 64x48)."""
    colors = tuple((40 * i + 20, 200 - 40 * i, 90) for i in range(len(names)))
    cs = ClassSet("toy", names, colors, 255)
    rng = np.random.default_rng(0)
    items = []
    for i in range(5):
        mask = rng.integers(0, len(names), (48, 64)).astype(np.uint8)
        items.append((f"f{i}", np.array(colors, np.uint8)[mask], mask))
    return write_dataset(root, cs, items, {"train": [f"f{i}" for i in range(4)],
                                           "val": ["f4"]})


def test_a_data_root_with_other_classes_is_refused(isolated, capsys):  # noqa: F811
    # Data sets move, so another --data-root is allowed; one whose classes differ would
    # give the classifier rows of another count (load_state_dict) or other names.
    three = _folder(isolated / "three", ("red", "green", "blue"))
    four = _folder(isolated / "four", ("red", "green", "blue", "grey"))
    last = _stopped_run(three, isolated / "run", "--dataset", "folder",
                        "--class-weighting", "none")
    err = _refused(capsys, ["train", "--resume", str(last), "--data-root", str(four)],
                   isolated / "run")
    assert "3 classes" in err and "has 4" in err and "grey" in err


def test_a_data_set_with_the_classes_renamed_is_refused_too():
    # Same count, other names: the classifier's rows would train under the wrong names.
    import pytest

    from canet_ros.classes import CAMVID
    from canet_ros.training.resume_checks import check_classes
    names = list(CAMVID.names)
    names[0], names[1] = names[1], names[0]
    with pytest.raises(ValueError, match="last.pt: the run's model has 11 classes"):
        check_classes({"class_names": names}, "last.pt", CAMVID)
    check_classes({"class_names": list(CAMVID.names)}, "last.pt", CAMVID)  # its own: fine
