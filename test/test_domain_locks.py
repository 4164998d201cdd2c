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

"""The test runs' DDS domain locks (conftest._claim_domain) on a machine many users share.

Lock files live in the temporary folder every user's runs share (the domains are the
machine's) and are never removed, so a run meets files other users' runs left there.
"""
import os
import shutil
import stat
import tempfile
from pathlib import Path

import conftest
import pytest

NOBODY = 65534


def lock_path(folder: Path, domain: int) -> Path:
    return folder / f"canet_ros_test_domain_{domain}.lock"


@pytest.fixture
def three_domains(tmp_path, monkeypatch):
    """Lock files in ``tmp_path``, for domains 1..3 only, tried from 1 on."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(conftest, "_DOMAINS", range(1, 4))
    monkeypatch.setattr(os, "getpid", lambda: 0)  # where the claim starts looking
    return tmp_path


def unopenable(folder: Path, domain: int) -> None:
    # A link to a folder: not a lock file anyone can open (chmod 000 would not stop root).
    lock_path(folder, domain).symlink_to(folder, target_is_directory=True)


def test_a_lock_path_this_user_cannot_open_counts_as_taken(three_domains):
    unopenable(three_domains, 1)
    unopenable(three_domains, 2)
    domain, handle = conftest._claim_domain()
    handle.close()
    assert domain == 3


def test_with_every_domain_taken_or_unopenable_the_claim_says_so(three_domains):
    unopenable(three_domains, 1)
    unopenable(three_domains, 3)
    held, held_handle = conftest._claim_domain()  # as another run would hold it
    try:
        assert held == 2
        with pytest.raises(RuntimeError) as error:
            conftest._claim_domain()
    finally:
        held_handle.close()
    assert "no ROS domain id 1..3 is free" in str(error.value)
    assert str(three_domains) in str(error.value)


def test_a_new_lock_file_is_open_to_every_user_whatever_the_umask(three_domains):
    umask = os.umask(0o077)
    try:
        domain, handle = conftest._claim_domain()
    finally:
        os.umask(umask)
    handle.close()
    assert stat.S_IMODE(lock_path(three_domains, domain).stat().st_mode) == 0o666


def _claim_as_nobody(folder: Path) -> str:
    """Run _claim_domain in a child process as user nobody; its answer, or its error."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, only the claim
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            tempfile.tempdir = str(folder)
            domain, handle = conftest._claim_domain()
            answer = str(domain)
        except BaseException as error:  # noqa: B902 - whatever it is, the parent says it
            answer = f"{type(error).__name__}: {error}"
        os.write(write_end, answer.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        text = answer.read().decode()
    os.waitpid(pid, 0)
    return text


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_lock_files_another_users_runs_left_still_serve(monkeypatch):
    # Another user cannot reach pytest's tmp_path (0700): a folder of the machine's own.
    folder = Path(tempfile.mkdtemp(prefix="canet_ros_domain_locks_"))
    try:
        folder.chmod(0o1777)  # as /tmp is
        monkeypatch.setattr(conftest, "_DOMAINS", range(1, 4))
        for domain in conftest._DOMAINS:  # root's runs left them: 0644, never removed
            lock_path(folder, domain).touch()
            lock_path(folder, domain).chmod(0o644)
        answer = _claim_as_nobody(folder)
    finally:
        shutil.rmtree(folder)
    assert answer in {"1", "2", "3"}, answer
