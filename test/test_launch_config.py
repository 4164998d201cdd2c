"""canet_ros.launch_config, the config YAMLs and the parameter rules both share.

No ROS needed: the launch files themselves are only parsed here (test_segment_launch.py
runs them on a ROS 2 machine).
"""
import ast
import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from canet_ros import launch_config as lc
from canet_ros.ros import params

REPO = Path(__file__).resolve().parents[1]
RESOLUTIONS = {"": None, "1024x512": "1024x512", " 480X360 ": "480x360", "128x96": "128x96"}


def resolve(**values):
    return lc.resolve_segment_launch(values, REPO)


@pytest.mark.parametrize("backbone, resolution",
                         list(itertools.product(("",) + params.BACKBONE_CHOICES, RESOLUTIONS)))
def test_every_backbone_and_resolution(backbone, resolution):
    plan = resolve(backbone=backbone, resolution=resolution)
    expected = {}
    if backbone:
        expected["backbone"] = backbone
    if RESOLUTIONS[resolution]:
        expected["resolution"] = RESOLUTIONS[resolution]
    assert plan.params_file == REPO / "config" / f"canet_{backbone or 'mobilenetv2'}.yaml"
    assert plan.overrides == expected
    assert plan.namespace == ""


def test_only_arguments_that_were_set_override_the_file(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("/**:\n  ros__parameters:\n    backbone: resnet18\n")
    plan = resolve(namespace="/robot/cam_front/", image_topic="/front/image_raw/",
                   checkpoint="~/m.pt", device="cuda:1", precision="fp16",
                   input_transport="compressed", params_file=str(own))
    assert plan.params_file == own.resolve() and plan.namespace == "/robot/cam_front"
    assert plan.overrides == {"checkpoint": "~/m.pt", "device": "cuda:1", "precision": "fp16",
                              "image_topic": "/front/image_raw",
                              "input_transport": "compressed"}
    wrapped = plan.node_parameters(wrap=lambda v: ("str", v))
    assert wrapped[0] == str(own.resolve()) and wrapped[1]["device"] == ("str", "cuda:1")
    assert resolve(image_topic="   ").overrides == {}


@pytest.mark.parametrize("values, words", [
    ({"backbone": "resnet50"}, "backbone"),
    ({"resolution": "1024"}, "WIDTHxHEIGHT"),
    ({"resolution": "0x0"}, "between"),
    ({"resolution": "16x16"}, "between"),
    ({"resolution": "axb"}, "WIDTHxHEIGHT"),
    ({"device": "gpu"}, "device"),
    ({"device": "cuda:x"}, "device"),
    ({"precision": "fp8"}, "precision"),
    ({"input_transport": "theora"}, "input_transport"),
    ({"image_topic": "/cam/1bad"}, "image_topic"),
    ({"image_topic": "has space"}, "image_topic"),
    ({"namespace": "bad ns"}, "namespace"),
    ({"namespace": "9cam"}, "namespace"),
    ({"params_file": "/nonexistent/params.yaml"}, "params_file"),
    ({"backbnoe": "resnet18"}, "unknown launch argument"),
])
def test_bad_values_are_rejected(values, words):
    with pytest.raises(lc.LaunchConfigError, match=words):
        resolve(**values)


def test_missing_share_config_is_reported(tmp_path):
    with pytest.raises(lc.LaunchConfigError, match="missing"):
        lc.resolve_segment_launch({}, tmp_path)


def test_multi_camera_arguments():
    names = [a.name for a in lc.multi_camera_arguments()]
    assert len(names) == len(set(names))
    defaults = {a.name: a.default for a in lc.multi_camera_arguments()}
    assert (defaults["front_namespace"], defaults["rear_namespace"]) == ("cam_front", "cam_rear")
    assert defaults["front_image_topic"] != defaults["rear_image_topic"]
    for prefix, _, _ in lc.CAMERAS:
        forwarded = lc.multi_camera_include_arguments(prefix)
        assert set(forwarded) == set(lc.SEGMENT_ARGUMENT_NAMES)
        assert set(forwarded.values()) <= set(names)
        assert forwarded["namespace"] == f"{prefix}_namespace"
    with pytest.raises(lc.LaunchConfigError):
        lc.multi_camera_include_arguments("left")


# -- config YAMLs ---------------------------------------------------------------------------
def load_config(backbone):
    document = yaml.safe_load((REPO / "config" / f"canet_{backbone}.yaml").read_text())
    assert list(document) == ["/**"], "config must be keyed /** to apply in any namespace"
    return document["/**"]["ros__parameters"]


@pytest.mark.parametrize("backbone", params.BACKBONE_CHOICES)
def test_config_yaml_matches_the_declared_parameters(backbone):
    values = load_config(backbone)
    assert set(values) == set(params.SPEC_BY_NAME)
    for name, value in values.items():
        # rclpy fixes each parameter's type at declaration: a YAML 1 for a double fails.
        assert type(value) is type(params.SPEC_BY_NAME[name].default), name
    assert values["backbone"] == backbone
    if backbone == "mobilenetv2":
        config = params.validate_config(values)
        assert (config.checkpoint, config.resolution) == ("default", (480, 360))
    else:
        assert values["checkpoint"] == ""
        with pytest.raises(params.ParamError, match=f"checkpoint.*{backbone}"):
            params.validate_config(values)
        values["checkpoint"] = f"/models/canet_{backbone}.pt"
        assert params.validate_config(values).resolution is None


# -- parameter rules (shared by the node and the launch helper) ----------------------------
def test_parameter_rules():
    assert params.BACKBONE_CHOICES == pytest.importorskip("canet_ros.models").BACKBONES
    preprocess = pytest.importorskip("canet_ros.inference.preprocess")
    assert (params.MIN_SIDE, params.MAX_SIDE) == (preprocess.MIN_SIDE, preprocess.MAX_SIDE)
    assert params.parse_resolution("") is None
    assert params.parse_resolution(" 64 x 32 ") == (64, 32)
    config = params.validate_config({})
    assert (config.input_topic, config.overlay_alpha) == ("/camera/image_raw", 0.5)
    compressed = params.validate_config({"input_transport": "compressed", "image_topic": "cam/"})
    assert compressed.input_topic == "cam/compressed"
    for bad in ({"overlay_alpha": 1.5}, {"overlay_alpha": True}, {"stats_period": 0.0},
                {"publish_confidence": "yes"}, {"checkpoint": "default", "backbone": "resnet18"},
                {"qos_reliability": "sometimes"}, {"device": 1}):
        with pytest.raises(params.ParamError):
            params.validate_config(bad)
    assert params.check_runtime_update([("overlay_alpha", 0.25), ("use_sim_time", True)]) is None
    assert "0.0 to 1.0" in params.check_runtime_update([("overlay_alpha", -0.1)])
    assert "read-only" in params.check_runtime_update([("image_topic", "/x")])


# -- launch files ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["segment.launch.py", "multi_camera.launch.py"])
def test_launch_files_stay_small_and_use_the_helper(name):
    source = (REPO / "launch" / name).read_text()
    tree = ast.parse(source)
    assert len(source.splitlines()) < 80
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"
               for n in tree.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "canet_ros.launch_config":
            for alias in node.names:
                assert hasattr(lc, alias.name), alias.name


def test_launch_helper_does_not_import_torch():
    code = ("import sys, canet_ros.launch_config; "
            "sys.exit(1 if 'torch' in sys.modules or 'rclpy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
