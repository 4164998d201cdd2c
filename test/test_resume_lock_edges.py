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


"""Edges of the resume notes and of the folder locks.

Each test kills a mutant of this session's code that the other tests let live.
"""
import fcntl
import os

import pytest


def test_rn2_a_config_file_data_root_is_not_judged(tmp_path):
    from canet_ros.training.resume_notes import missing_data_folder
    resume = tmp_path / "run" / "last.pt"
    blob = {"train_state": {"epoch": 1}, "train_args": {
        "data_root": str(tmp_path / "gone"), "out_dir": ".", "holdout": None}}
    other = tmp_path / "moved"
    other.mkdir()
    # --config gave data_root: moved (not a flag); the saved folder is gone
    assert missing_data_folder(resume, blob, {"data_root": str(other)}, {}) is None


def test_rn4_rn11_replay_root_of_a_run_without_replay_is_not_judged(tmp_path):
    from canet_ros.training.resume_notes import missing_data_folder
    resume = tmp_path / "run" / "last.pt"
    gone = str(tmp_path / "gone")
    blob = {"train_state": {"epoch": 1}, "train_args": {
        "replay_root": gone, "out_dir": ".", "holdout": None}}
    for asked in ({"replay_root": gone, "replay_dataset": "camvid", "replay_ratio": 0},
                  {"replay_root": gone, "replay_dataset": None, "replay_ratio": 0.5}):
        assert missing_data_folder(resume, blob, asked, {}) is None, asked


def test_rn5_a_steps_run_at_its_last_step_is_finished(tmp_path):
    from canet_ros.training.resume_notes import finished_run
    assert finished_run(tmp_path / "last.pt", {"epoch": 1, "global_step": 10},
                        {"steps": 10, "epochs": 5})


def test_rn7_without_best_pt_init_weights_names_last_pt(tmp_path):
    from canet_ros.training.resume_notes import finished_run
    line = finished_run(tmp_path / "last.pt", {"epoch": 2, "global_step": 4}, {"epochs": 2})
    assert f"--init-weights {tmp_path / 'last.pt'} " in line


def test_rn9_no_note_without_a_model_pt(tmp_path):
    from canet_ros.training.resume_notes import unrecorded_export
    assert unrecorded_export(tmp_path / "last.pt", {"train_args": {}}, True) is None


def test_fl1_a_lock_on_a_removed_file_is_not_held(tmp_path):
    from canet_ros.folder_lock import FolderLock
    lock = FolderLock(tmp_path / "out", tmp_path / "out.lock", "test")
    fd = lock._open()
    os.unlink(lock.path)  # the last holder removed it on release
    try:
        assert lock._try(fd, fcntl.LOCK_EX) is False
    finally:
        os.close(fd)


def test_fl4_releasing_does_not_remove_a_newer_lock_file(tmp_path):
    from canet_ros.folder_lock import FolderLock
    a = FolderLock(tmp_path / "out", tmp_path / "out.lock", "test")
    a.acquire_exclusive()
    os.unlink(a.path)          # as another process's release would, racing
    b = FolderLock(tmp_path / "out", tmp_path / "out.lock", "test")
    b.acquire_exclusive()      # a new run holds the new file
    a.release()
    assert b.path.exists(), "a's release removed b's lock file: a third run could start"
    b.release()


def test_fl2_a_foreign_file_at_the_lock_path_is_refused_and_kept(tmp_path):
    from canet_ros.errors import CanetError
    from canet_ros.folder_lock import FolderLock
    path = tmp_path / "out.lock"
    path.write_text("my notes\n")
    with pytest.raises(CanetError, match="not a canet test lock file"):
        FolderLock(tmp_path / "out", path, "test").acquire_exclusive()
    assert path.read_text() == "my notes\n"


def test_tr6_finished_resume_on_other_ranks_says_nothing(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from canet_ros.cli import train
    monkeypatch.setenv("RANK", "1")
    exported = []
    monkeypatch.setattr(train, "_export", lambda *a: exported.append(a))
    cfg = SimpleNamespace(resume=str(tmp_path / "last.pt"), export="x.pt",
                          export_prior_correction=None, out_dir=str(tmp_path))
    assert train._finished(cfg, {"train_state": {}}, "finished") == 0
    assert exported == [] and capsys.readouterr().out == ""
