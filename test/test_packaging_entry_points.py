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


"""What an installed package offers outside the repository checkout and without ROS sourced.

The shipped training configs are named from any folder; ``segmentation_node`` without
rclpy says in one line what to source, and ``canet benchmark --startup`` then reports the
node as not measured rather than as a node that refused a bad parameter.
"""
import argparse
import sys
from pathlib import Path

import pytest
import yaml

from canet_ros.benchmark import startup
from canet_ros.training.config import add_config_arguments, config_from_args, load_yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "canet_ros" / "training" / "configs"
DOCUMENTED = "canet_ros/training/configs/camvid_mobilenetv2.yaml"  # README, docs/*.md
# The node's console script with rclpy absent, as in a shell where ROS is not sourced.
NODE_WITHOUT_ROS = [sys.executable, "-c", "import sys; sys.modules['rclpy'] = None; "
                    "from canet_ros.ros.node import main; main()"]


# -- 4. --config names a shipped config from any folder ----------------------------------
@pytest.mark.parametrize("given", [DOCUMENTED, "./" + DOCUMENTED, "camvid_mobilenetv2.yaml",
                                   "camvid_mobilenetv2"])
def test_a_shipped_config_is_found_outside_the_checkout(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)  # ~/ros2_ws, say: no canet_ros/ folder here
    expected = yaml.safe_load((CONFIGS / "camvid_mobilenetv2.yaml").read_text())
    assert load_yaml(given) == expected
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--config", given]))
    assert (cfg.lr, cfg.epochs, cfg.train_exclude) == (
        expected["lr"], expected["epochs"], expected["train_exclude"])


def test_an_existing_file_wins_over_the_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "camvid_mobilenetv2.yaml").write_text("lr: 0.5\n")
    assert load_yaml("camvid_mobilenetv2.yaml") == {"lr": 0.5}
    mine = tmp_path / "canet_ros" / "training" / "configs"
    mine.mkdir(parents=True)
    (mine / "camvid_mobilenetv2.yaml").write_text("lr: 0.25\n")
    assert load_yaml(DOCUMENTED) == {"lr": 0.25}


def test_a_missing_config_lists_the_shipped_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert len(shipped) >= 4
    for given in ("nope.yaml", "elsewhere/camvid_mobilenetv2.yaml",
                  str(tmp_path / "camvid_mobilenetv2.yaml")):
        with pytest.raises(ValueError, match="config file not found") as info:
            load_yaml(given)
        assert str(info.value).startswith(f"{given}: ")
        assert all(name in str(info.value) for name in shipped)


# -- 5. segmentation_node without ROS sourced --------------------------------------------
def test_node_without_rclpy_says_what_to_source_in_one_line():
    import subprocess

    proc = subprocess.run(NODE_WITHOUT_ROS + ["--ros-args", "-p", "device:=cpu"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "rclpy" in lines[0] and "source your ROS 2 setup" in lines[0]
    assert "/opt/ros/jazzy/setup.bash" in lines[0]


def test_startup_reports_the_node_as_not_measured_without_rclpy(monkeypatch):
    def entry_point(name, module):
        return NODE_WITHOUT_ROS if name == "segmentation_node" else [sys.executable, "-c", ""]

    touched = []
    monkeypatch.setattr(startup, "_entry_point", entry_point)
    monkeypatch.setattr(startup, "_cache_export", lambda checkpoint: touched.append("cache"))
    monkeypatch.setattr(startup, "_until_ready",
                        lambda argv, env: touched.append("ready") or (1.0, "ready"))
    report = startup.measure_startup([], "default", progress=False)
    assert touched == []  # neither the export nor a start that cannot happen
    assert [report[k] for k in ("node_bad_parameter_exit_s", "node_bad_parameter_status",
                                "node_ready_cached_s", "node_ready_uncached_s")] == [None] * 4
    assert "source your ROS 2 setup" in report["node_not_measured"]
    assert set(report["help_s"]) == {"--help"} and "help_failed" not in report
    text = startup.summary(report)
    assert "not measured" in text and "bad parameter" not in text
