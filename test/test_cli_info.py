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

"""``canet info``: JSON numbers measured on the real module."""
import json
import subprocess
import sys

import pytest

from canet_ros.cli import main
from canet_ros.models import build_canet, count_params


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("backbone,paper_params,paper_gmacs",
                         [("mobilenetv2", 4.8e6, 18.5), ("resnet18", 15.8e6, 38.7)])
def test_info_json_matches_module_and_paper(capsys, backbone, paper_params, paper_gmacs):
    info = run_json(capsys, "info", "--backbone", backbone, "--num-classes", "19",
                    "--height", "512", "--width", "1024", "--json")
    assert info["backbone"] == backbone
    assert info["params"] == count_params(build_canet(backbone, 19))
    assert info["output_shape"] == [1, 19, 512, 1024]
    assert abs(info["params"] / paper_params - 1) <= 0.10
    assert abs(info["gmacs"] / paper_gmacs - 1) <= 0.10


def test_info_odd_size(capsys):
    info = run_json(capsys, "info", "--backbone", "mobilenetv2", "--num-classes", "11",
                    "--height", "97", "--width", "131", "--json")
    assert info["output_shape"] == [1, 11, 97, 131]


def test_info_on_a_checkpoint(capsys, tmp_path):
    from canet_ros.checkpoint import build_metadata, save_checkpoint
    from canet_ros.classes import CAMVID

    path = save_checkpoint(tmp_path / "c.pt", build_canet("mobilenetv2", 11),
                           build_metadata("mobilenetv2", CAMVID, input_size=(480, 360)))
    info = run_json(capsys, "info", "--checkpoint", str(path), "--json")
    assert info["backbone"] == "mobilenetv2" and info["input_size"] == [480, 360]
    assert info["params"] == count_params(build_canet("mobilenetv2", 11))


def test_info_bad_checkpoint(capsys, tmp_path):
    missing = tmp_path / "nothing.pt"
    assert main(["info", "--checkpoint", str(missing)]) == 1
    assert capsys.readouterr().err == f"canet info: error: {missing}: no such checkpoint file\n"


@pytest.mark.parametrize("flag", ["--height", "--width", "--num-classes"])
def test_info_nonpositive_size_is_a_usage_error(capsys, flag):
    with pytest.raises(SystemExit) as exc:
        main(["info", flag, "0"])
    assert exc.value.code == 2
    assert f"argument {flag}: '0' must be at least 1" in capsys.readouterr().err


def test_closed_output_pipe_ends_quietly():
    # `canet ... --json | head`: the reader leaves early; no traceback, the SIGPIPE status.
    code = ("import sys; from canet_ros.cli import run_command; "
            "sys.exit(run_command(lambda a: print('x' * 4_000_000), None))")
    proc = subprocess.run(["bash", "-c", f'"{sys.executable}" -c "{code}" | head -c 1; '
                           'echo " ${PIPESTATUS[0]}" >&2'], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout == "x"
    assert proc.stderr.strip() == "141", proc.stderr


def test_training_history_is_labelled_as_such(capsys, tmp_path):
    from canet_ros.checkpoint import build_metadata, save_checkpoint
    from canet_ros.classes import CAMVID

    meta = build_metadata("mobilenetv2", CAMVID, input_size=(480, 360),
                          train_args={"init_weights": "../stage1.pt"},
                          metrics={"epoch": 3, "selection": "val mIoU", "prior_correction": 0.0,
                                   "val": {"miou": 0.5, "global_acc": 0.8, "frames": 9}})
    meta["prior_correction"] = 0.75
    path = save_checkpoint(tmp_path / "c.pt", build_canet("mobilenetv2", 11), meta)
    assert main(["info", "--checkpoint", str(path)]) == 0
    text = capsys.readouterr().out
    assert "class-prior correction: 0.75" in text
    assert "this file's figures: none recorded in the file" in text
    history = text[text.index("training history"):]
    assert "at class-prior correction 0; this file has 0.75, so these are not its figures" \
        in history and "val: 50.0 mIoU, 80.0 % global accuracy (9 frames)" in history
    assert "init_weights: ../stage1.pt  (the checkpoint this run started from" in history
    info = run_json(capsys, "info", "--checkpoint", str(path), "--json")
    assert "not its figures" in info["metrics_note"]


def test_the_bundled_model_shows_its_own_figures(capsys):
    from canet_ros.checkpoint import DEFAULT_CHECKPOINT

    card = (DEFAULT_CHECKPOINT.parent / "MODEL_CARD.md").read_text()
    assert "| CamVid val | 101 | **68.8** | **93.3** |" in card  # the card's own row
    assert main(["info", "--checkpoint", "default"]) == 0
    text = capsys.readouterr().out
    figures = text[text.index("this file's figures"):text.index("training history")]
    assert "CamVid val" in figures and "68.8 mIoU, 93.3 % global accuracy" in figures
    assert "40-55 mIoU" in figures
    assert "init_weights ../start_mnv2_scratch.pt: CANet1 trained from random weights" in text


def test_info_on_a_backbone_the_paper_has_no_row_for(capsys, monkeypatch):
    """A backbone added as docs/design.md's Extending says: info describes it, no paper row."""
    import dataclasses

    from canet_ros.cli import info as info_cli
    from canet_ros.models import backbones, canet

    # A fourth backbone wired everywhere the model needs it, but not in PAPER_TABLE2.
    extra = dataclasses.replace(backbones.SPECS["resnet18"], name="extra18")
    monkeypatch.setitem(backbones.SPECS, "extra18", extra)
    monkeypatch.setitem(canet._DECODER_WIDTHS, "extra18", (256, 256, 256))
    monkeypatch.setattr(info_cli, "BACKBONES", info_cli.BACKBONES + ("extra18",))
    info = run_json(capsys, "info", "--backbone", "extra18", "--num-classes", "3",
                    "--height", "64", "--width", "96", "--json")
    assert info["backbone"] == "extra18" and info["output_shape"] == [1, 3, 64, 96]
    assert info["paper"]["model"] is None and info["paper"]["params_m"] is None
    assert "no row" in info["paper"]["note"]


def test_paper_rows_are_the_papers_three_canets():
    """The paper names CANet1/2/3 for MobileNetV2, ResNet18, ResNet101 (section 3.3)."""
    from canet_ros.cli.choices import BACKBONES
    from canet_ros.cli.info import PAPER_TABLE2

    assert {k: v["name"] for k, v in PAPER_TABLE2.items()} == {
        "mobilenetv2": "CANet1", "resnet18": "CANet2", "resnet101": "CANet3"}
    assert set(PAPER_TABLE2) <= set(BACKBONES)  # no row for a backbone that is gone
