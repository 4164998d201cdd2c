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

"""One exit-status convention for every subcommand, as ``canet --help`` documents it.

0 ok, 1 bad input (one ``canet COMMAND: error: ...`` line), 2 usage (argparse),
130 interrupted, 141 closed output pipe (test_cli_info.py).
"""
import errno
import logging
import subprocess
import sys

import pytest

from canet_ros.checkpoint import CheckpointError
from canet_ros.cli import main, run_command
from canet_ros.errors import CanetError, DatasetError


def _raises(exc):
    def func(_args):
        raise exc
    return func


@pytest.mark.parametrize("exc", [CanetError("x.yaml: no such file"),
                                 CheckpointError("x.pt: not a torch file"),
                                 DatasetError("camvid/val: folder not found")],
                         ids=["CanetError", "CheckpointError", "DatasetError"])
def test_input_errors_are_one_line_and_status_1(capsys, exc):
    assert run_command(_raises(exc), None, "canet demo") == 1
    assert capsys.readouterr().err == f"canet demo: error: {exc}\n"


def test_os_errors_name_the_file(capsys):
    exc = PermissionError(errno.EACCES, "Permission denied", "out/report.json")
    assert run_command(_raises(exc), None, "canet demo") == 1
    assert capsys.readouterr().err == ("canet demo: error: [Errno 13] Permission denied: "
                                       "'out/report.json'\n")


def test_bugs_keep_their_traceback():
    with pytest.raises(ZeroDivisionError):
        run_command(lambda _args: 1 / 0, None, "canet demo")


def test_ctrl_c_is_status_130(capsys):
    assert run_command(_raises(KeyboardInterrupt()), None, "canet demo") == 130
    assert capsys.readouterr().err == "canet demo: interrupted\n"


def test_return_value_is_the_status():
    assert run_command(lambda _args: None, None) == 0
    assert run_command(lambda _args: 3, None) == 3


@pytest.mark.parametrize("argv", [[], ["nosuch"], ["info", "--bogus"], ["info", "--width", "x"]],
                         ids=["no-command", "unknown-command", "unknown-option", "bad-int"])
def test_usage_errors_are_status_2(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: canet" in capsys.readouterr().err


def test_verbose_logs_the_traceback(caplog, tmp_path):
    with caplog.at_level(logging.DEBUG, logger="canet_ros.cli"):
        assert main(["-v", "info", "--checkpoint", str(tmp_path / "none.pt")]) == 1
    assert any(r.exc_info and r.exc_info[0] is CheckpointError for r in caplog.records)


@pytest.mark.parametrize("case", ["info", "evaluate", "evaluate-data", "benchmark", "train",
                                  "segment-bag", "export"])
def test_every_subcommand_reports_bad_input_the_same_way(capsys, tmp_path, case):
    missing = tmp_path / "missing"
    command = case.split("-data")[0]
    argv = {
        "info": ["--checkpoint", f"{missing}.pt"],
        "evaluate": ["--checkpoint", f"{missing}.pt"],
        "evaluate-data": ["--checkpoint", "default", "--data-root", str(missing)],
        "benchmark": ["--checkpoint", f"{missing}.pt", "--iters", "1", "--warmup", "0",
                      "--height", "64", "--width", "64", "--no-progress"],
        "train": ["--config", f"{missing}.yaml"],
        "segment-bag": [f"{missing}.mcap", "--out", str(tmp_path / "out")],
        "export": ["--checkpoint", f"{missing}.pt", "--out", str(tmp_path / "x.onnx")],
    }[case]
    assert main([command, *argv]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"canet {command}: error: "), lines
    assert str(missing) in lines[0]


@pytest.mark.parametrize("command,argv,option", [
    ("info", ["--width", "x"], "--width"),
    ("train", ["--device", "tpu"], "--device"),
    ("train", ["--epochs", "0"], "--epochs"),
    ("evaluate", ["--resolution", "abc"], "--resolution"),
    ("evaluate", ["--batch-size", "0"], "--batch-size"),
    ("benchmark", ["--warmup", "-1"], "--warmup"),
    ("benchmark", ["--device", "gpu"], "--device"),
    ("segment-bag", ["sample", "--out", "o", "--resolution", "abc"], "--resolution"),
    ("segment-bag", ["sample", "--out", "o", "--device", "tpu"], "--device"),
    ("export", ["--out", "x.onnx", "--device", "tpu"], "--device"),
    ("extract-frames", ["sample", "--out", "o", "--device", "tpu"], "--device"),
    ("extract-frames", ["sample", "--out", "o", "--resolution", "abc"], "--resolution"),
])
def test_a_malformed_value_is_a_usage_error_in_every_command(capsys, command, argv, option):
    with pytest.raises(SystemExit) as exc:
        main([command, *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"usage: canet {command}" in err
    assert err.strip().splitlines()[-1].startswith(f"canet {command}: error: argument {option}")


@pytest.mark.parametrize("command,argv", [
    ("info", []), ("evaluate", []), ("export", ["--out", "x.onnx"]),
    ("benchmark", ["--height", "64", "--width", "64", "--no-progress"]),
])
def test_a_file_that_is_not_a_checkpoint_is_one_line(capsys, tmp_path, command, argv):
    notes = tmp_path / "notes.txt"
    notes.write_text("meeting notes\n")
    assert main([command, "--checkpoint", str(notes), *argv]) == 1
    err = capsys.readouterr().err
    assert err == f"canet {command}: error: {notes}: not a torch file, so not a canet_ros " \
                  f"checkpoint\n"


def test_no_log_line_before_an_error(tmp_path):
    # In its own process, where logging reaches stderr as a user sees it.
    notes = tmp_path / "notes.txt"
    notes.write_text("meeting notes\n")
    done = subprocess.run([sys.executable, "-m", "canet_ros.cli", "segment-bag", "sample",
                           "--out", str(tmp_path / "o"), "--checkpoint", str(notes),
                           "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [f"canet segment-bag: error: {notes}: not a torch "
                                        f"file, so not a canet_ros checkpoint"]


def test_a_crop_of_no_pixels_is_refused_before_training_starts(capsys, tmp_path):
    rc = main(["train", "--crop-size", "0", "0", "--out-dir", str(tmp_path / "run")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and lines == ["canet train: error: crop_size must be two positive integers "
                                 "WIDTH HEIGHT, got [0, 0]"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command,argv,expected", [
    ("export", ["--format", "checkpoint", "--out", "{dir}"],
     "{dir}: a folder; --out needs a file name such as model.pt"),
    ("benchmark", ["--image", "{dir}/nope.png", "--height", "64", "--width", "64",
                   "--no-progress"], "--image {dir}/nope.png: no such file"),
])
def test_an_output_folder_or_missing_image_is_named_plainly(capsys, tmp_path, command, argv,
                                                            expected):
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    assert main([command, *argv]) == 1
    err = capsys.readouterr().err
    assert err == f"canet {command}: error: {expected.replace('{dir}', str(tmp_path))}\n"
