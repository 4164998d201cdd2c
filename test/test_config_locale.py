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

"""Non-ASCII names in a --config file mean what the same names as flags mean, in any locale.

Python decodes flags (and file names) with the filesystem encoding, ASCII with surrogate
escapes under ``LC_ALL=C PYTHONUTF8=0``; a config file is UTF-8. A reviewer saw
``train_exclude: [画像]`` match no frame there, where ``--train-exclude 画像`` did. The
C-locale cases run in a child process, the only way to have another filesystem encoding.
"""
import json
import os
import subprocess
import sys

import yaml

STEMS = ["фото_0", "фото_1", "画像_2", "画像_3", "é_4", "é_5"]
CHILD = """
import argparse, json, os, sys
from pathlib import Path
from canet_ros.data.camvid import filter_names
from canet_ros.training.config import (add_config_arguments, config_from_args,
                                       portable_train_args, save_config)

parser = argparse.ArgumentParser()
add_config_arguments(parser)
def config(argv, resumed=None):
    return config_from_args(parser.parse_args(argv), resumed)
def text(names):  # bytes of the names as UTF-8 (the ASCII locale's escapes undone)
    return [n.encode("utf-8", "surrogateescape").decode("utf-8") for n in names]

job, folder, recipe, *flags = sys.argv[1:]
stems = sorted(os.path.splitext(n)[0] for n in os.listdir(folder))
out = {"encoding": sys.getfilesystemencoding()}
by_flags = config(flags)
if job == "read":
    cfg = config(["--config", recipe])
    keys = ("data_root", "train_include", "train_exclude", "holdout", "replay_exclude")
    out["as_flags"] = {k: getattr(cfg, k) == getattr(by_flags, k) for k in keys}
    try:
        out["data_root_found"] = Path(cfg.data_root).is_dir()
    except UnicodeError as exc:
        out["data_root_found"] = str(exc)
    out["train"] = text(filter_names(stems, cfg.train_include, cfg.train_exclude))
    out["holdout"] = text(s for s in stems if s.startswith(cfg.holdout))
    out["replay"] = text(filter_names(stems, None, cfg.replay_exclude))
    out["val_sets"] = {text([v["name"]])[0]: text(filter_names(
        stems, v.get("include"), v.get("exclude"))) for v in cfg.val_sets}
    out["select_on"] = text([cfg.select_on])[0]
elif job == "save":
    run = Path(recipe)
    run.mkdir()
    save_config(by_flags, run / "config.yaml")
    (run / "log.csv").write_text("")  # what makes it a run's own config
    again = config(["--config", str(run / "config.yaml")])
    out["read_back_as_flags"] = again.train_exclude == by_flags.train_exclude
else:  # resume a run the flags started, now given the same names in the config file
    blob = {"train_state": {}, "train_args": portable_train_args(by_flags, os.getcwd())}
    try:
        config(["--resume", "last.pt", "--config", recipe], blob)
        out["resumed"] = True
    except ValueError as exc:
        out["resumed"] = str(exc)
print(json.dumps(out))
"""


def folder(tmp_path):
    images = tmp_path / "données"
    images.mkdir()
    for stem in STEMS:
        (images / f"{stem}.png").write_bytes(b"")
    return images


def in_c_locale(job, tmp_path, images, recipe, *flags):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHON"))}
    proc = subprocess.run([sys.executable, "-c", CHILD, job, *map(os.fsencode, (images, recipe)),
                           *(os.fsencode(str(f)) for f in flags)],
                          capture_output=True, timeout=300, cwd=tmp_path,
                          env=env | {"LC_ALL": "C", "PYTHONUTF8": "0"})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    found = json.loads(proc.stdout)
    assert found.pop("encoding") == "ascii"  # else these tests test nothing
    return found


def test_config_file_names_select_the_frames_their_flags_select(tmp_path):
    images = folder(tmp_path)
    recipe = tmp_path / "c.yaml"
    recipe.write_text(yaml.safe_dump({
        "data_root": str(images), "train_include": ["фото", "画像"], "train_exclude": "画像_3",
        "holdout": "é", "replay_exclude": ["画像"], "select_on": "день",
        "val_sets": [{"name": "день", "split": "val", "include": ["фото"],
                      "exclude": ["фото_1"]}, "ночь=val:画像"]},
        allow_unicode=True), encoding="utf-8")
    flags = ["--data-root", images, "--train-include", "фото", "画像", "--train-exclude",
             "画像_3", "--holdout", "é", "--replay-exclude", "画像"]
    found = in_c_locale("read", tmp_path, images, recipe, *flags)
    assert found == {
        "as_flags": dict.fromkeys(("data_root", "train_include", "train_exclude", "holdout",
                                   "replay_exclude"), True),
        "data_root_found": True,
        "train": ["фото_0", "фото_1", "画像_2"], "holdout": ["é_4", "é_5"],
        "replay": ["é_4", "é_5", "фото_0", "фото_1"],
        "val_sets": {"день": ["фото_0"], "ночь": ["画像_2", "画像_3"]}, "select_on": "день"}


def test_a_runs_config_yaml_holds_the_names_as_text_and_reads_back(tmp_path):
    images = folder(tmp_path)
    found = in_c_locale("save", tmp_path, images, tmp_path / "run", "--train-exclude", "画像")
    assert found == {"read_back_as_flags": True}
    # What the user typed, not the C locale's escapes of its bytes: the same in any locale.
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text(encoding="utf-8"))
    assert saved["train_exclude"] == ["画像"]


def test_a_resume_given_the_runs_names_in_a_config_file_is_not_refused(tmp_path):
    images = folder(tmp_path)
    recipe = tmp_path / "c.yaml"
    recipe.write_text("train_exclude: [画像]\nval_sets: ['день=val:фото']\n", encoding="utf-8")
    found = in_c_locale("resume", tmp_path, images, recipe, "--train-exclude", "画像",
                        "--val-sets", "день=val:фото")
    assert found == {"resumed": True}
