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

"""canet_ros.launch_config, the config YAMLs and the parameter rules both share.

No ROS needed: the launch files themselves are only parsed here (test_launch_system.py
and test_segment_launch.py run them with ros2 launch and launch_pytest).
"""
import ast
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from canet_ros import launch_config as lc
from canet_ros import launch_multi_camera as mc
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


def test_every_node_parameter_is_a_launch_argument():
    """publish_confidence:=true used to be ignored: it was no argument of the file."""
    assert set(params.SPEC_BY_NAME) <= set(lc.SEGMENT_ARGUMENT_NAMES)
    assert len(set(lc.SEGMENT_ARGUMENT_NAMES)) == len(lc.SEGMENT_ARGUMENT_NAMES)


def test_overrides_have_the_types_the_node_declares():
    """Hand rclpy a float for a double (it refuses 1) and a bool for a bool (not "true")."""
    plan = resolve(overlay_alpha="1", stats_period="2.5", publish_confidence="True",
                   qos_reliability="reliable")
    assert plan.overrides == {"overlay_alpha": 1.0, "stats_period": 2.5,
                              "publish_confidence": True, "qos_reliability": "reliable"}
    assert type(plan.overrides["overlay_alpha"]) is float
    assert resolve(publish_confidence="false").overrides == {"publish_confidence": False}
    wrapped = plan.node_parameters(wrap=lambda v: ("str", v))[1]
    assert wrapped == {"overlay_alpha": 1.0, "stats_period": 2.5, "publish_confidence": True,
                       "qos_reliability": ("str", "reliable")}
    for name, spec in params.SPEC_BY_NAME.items():  # the node accepts what launch hands it
        value = spec.default if spec.default not in ("", None) else None
        if value is not None and name != "checkpoint":
            given = str(value).lower() if isinstance(value, bool) else str(value)
            override = resolve(**{name: given}).overrides[name]
            assert params.validate_config({name: override}) is not None, name


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
    ({"overlay_alpha": "1.5"}, "overlay_alpha"),
    ({"overlay_alpha": "nan"}, "overlay_alpha"),
    ({"overlay_alpha": "half"}, "not a number"),
    ({"stats_period": "0"}, "stats_period"),
    ({"publish_confidence": "yes"}, "not true or false"),
    ({"use_sim_time": "1"}, "use_sim_time '1' is not true or false"),
    ({"qos_reliability": "sometimes"}, "qos_reliability"),
])
def test_bad_values_are_rejected(values, words):
    with pytest.raises(lc.LaunchConfigError, match=words):
        resolve(**values)


def test_use_sim_time_reaches_every_node_as_a_boolean():
    # rclpy declares it on every node (not among ours); bag replay needs it on the node.
    assert resolve(use_sim_time="True").overrides == {"use_sim_time": True}
    assert resolve(use_sim_time="false").overrides == {"use_sim_time": False}
    assert "use_sim_time" not in resolve().overrides  # the params file's value stands
    values = {a.name: a.default for a in mc.multi_camera_arguments()}
    plans = mc.resolve_multi_camera_launch(dict(values, use_sim_time="true"), REPO)
    assert [plan.overrides["use_sim_time"] for _, plan in plans] == [True, True]


def test_missing_share_config_is_reported(tmp_path):
    with pytest.raises(lc.LaunchConfigError, match="missing"):
        lc.resolve_segment_launch({}, tmp_path)


def test_multi_camera_arguments():
    names = [a.name for a in mc.multi_camera_arguments()]
    assert tuple(names) == mc.MULTI_CAMERA_ARGUMENT_NAMES and len(names) == len(set(names))
    # The included file's own names would do nothing here: they must not be offered.
    assert not set(mc.PER_CAMERA) & set(names)
    per_camera = {f"{prefix}_{name}" for prefix, _ in mc.CAMERAS for name in mc.PER_CAMERA}
    shared = set(lc.SEGMENT_ARGUMENT_NAMES) - set(mc.PER_CAMERA)
    assert set(names) == per_camera | shared
    defaults = {a.name: a.default for a in mc.multi_camera_arguments()}
    assert (defaults["front_namespace"], defaults["rear_namespace"]) == ("cam_front", "cam_rear")
    # Empty: a params_file's image_topic decides, else /<namespace>/image_raw (the plans).
    assert defaults["front_image_topic"] == defaults["rear_image_topic"] == ""


def test_multi_camera_plans_per_camera_and_shared_values():
    values = {a.name: a.default for a in mc.multi_camera_arguments()}
    values.update(rear_input_transport="compressed", resolution="256x128",
                  publish_confidence="true")
    plans = dict(mc.resolve_multi_camera_launch(values, REPO))
    assert list(plans) == ["front", "rear"]
    front, rear = plans["front"], plans["rear"]
    assert (front.namespace, rear.namespace) == ("cam_front", "cam_rear")
    assert front.overrides == {"image_topic": "/cam_front/image_raw", "resolution": "256x128",
                               "publish_confidence": True}
    assert rear.overrides == {"image_topic": "/cam_rear/image_raw", "resolution": "256x128",
                              "publish_confidence": True, "input_transport": "compressed"}
    for bad, words in (({"image_topic": "/x"}, "unknown launch argument"),
                       ({"rear_namespace": "cam_front"}, "different namespaces"),
                       ({"front_input_transport": "theora"}, "front camera: input_transport")):
        with pytest.raises(lc.LaunchConfigError, match=words):
            mc.resolve_multi_camera_launch(dict(values, **bad), REPO)


def test_given_arguments_are_checked_when_the_file_is_the_one_started():
    argv = ["backbone:=resnet18", "bakbone:=resnet18", "launch-prefix:=gdb -ex run"]
    names = lc.given_argument_names(argv)
    assert names == ["backbone", "bakbone", "launch-prefix"]
    with pytest.raises(lc.LaunchConfigError) as error:
        lc.check_given_arguments(names, lc.SEGMENT_ARGUMENT_NAMES, "segment.launch.py")
    message = str(error.value)
    assert "\n" not in message and "bakbone;" in message and "launch-prefix" not in message
    assert message.endswith(", ".join(lc.SEGMENT_ARGUMENT_NAMES))
    lc.check_given_arguments(["backbone", "launch-prefix"], lc.SEGMENT_ARGUMENT_NAMES, "x")
    # ros2 launch FILE a:=b sets exactly the command line's names before FILE runs ...
    started = lc.started_by_ros2_launch
    segment = str(REPO / "launch" / "segment.launch.py")
    assert started(argv, {"backbone", "bakbone", "launch-prefix"}, segment, segment)
    assert started([], {}, os.path.relpath(segment), segment)
    # ... an including file's arguments (its own and those it passes) are there too.
    assert not started(["robot:=r1"], {"robot", "use_sim_time", "image_topic"}, segment, segment)
    assert not started([], {"image_topic"}, segment, segment)
    # A wrapper given all its arguments leaves exactly the command line's names: only the
    # file ros2 launch was asked to run tells it apart; unknown files mean included.
    wrapper = "/home/user/ws/robot.launch.py"
    assert not started(["robot:=r1"], {"robot"}, wrapper, segment)
    assert not started(["robot:=r1"], {"robot"}, None, segment)
    assert not started([], {}, segment, None)


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
        # No resolution: every checkpoint runs at its training size (the bundled one's
        # 480x360 is checked in test_launch_defaults.py).
        assert (config.checkpoint, config.resolution) == ("default", None)
    else:
        assert values["checkpoint"] == ""
        with pytest.raises(params.ParamError, match=f"checkpoint.*{backbone}"):
            params.validate_config(values)
        values["checkpoint"] = f"/models/canet_{backbone}.pt"
        assert params.validate_config(values).resolution is None


def test_show_args_says_what_the_shipped_files_set():
    # --show-args: "... the params file's value stands (shipped: ...)" must be the files'.
    described = {a.name: a.description for a in lc.SEGMENT_ARGUMENTS}
    assert "(shipped: '')" in described["resolution"]
    # resolution's own "empty = the checkpoint's size" must not meet a second "empty:"
    # meaning the params file's value: the argument's emptiness is named as its own.
    for name in (*params.SPEC_BY_NAME, "use_sim_time"):
        assert "; empty:" not in described[name], name
        assert "this argument left empty sets nothing" in described[name], name
    for name in params.SPEC_BY_NAME:
        if name == "backbone":  # the argument picks the file
            continue
        shipped = {backbone: load_config(backbone)[name]
                   for backbone in params.BACKBONE_CHOICES}
        if len(set(map(str, shipped.values()))) > 1 or name in lc.SHIPPED_PER_BACKBONE:
            assert lc.SHIPPED_PER_BACKBONE[name] == shipped, name
        else:
            value = next(iter(shipped.values()))
            value = str(value).lower() if isinstance(value, bool) else value
            assert f"(shipped: {value!r})" in described[name], name


def _as_the_node_reads(tmp_path: Path, value: str):
    """Return the parameter rcl gives a node from a launch_ros params file (yaml.dump)."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.node import Node

    path = tmp_path / "launch_params.yaml"
    path.write_text(yaml.dump({"/**": {"ros__parameters": {"checkpoint": value}}},
                              default_flow_style=False))
    context = rclpy.Context()
    rclpy.init(args=["--ros-args", "--params-file", str(path)], context=context)
    try:
        node = Node("probe", context=context,
                    automatically_declare_parameters_from_overrides=True)
        param = node.get_parameter("checkpoint")
        node.destroy_node()
        return param.type_.name, param.value
    finally:
        rclpy.shutdown(context=context)


def test_a_checkpoint_named_like_a_number_reaches_the_node_as_a_string(tmp_path):
    # rcl reads a bare 1e3 as a double (the node then refuses the type); ./1e3 is the
    # same file, read as a string.
    assert _as_the_node_reads(tmp_path, "1e3")[0] == "DOUBLE"  # the trap itself
    for text in ("1e3", "2", "-1.5e-3", ".5"):
        value = lc.parameter_override("checkpoint", text)
        assert value == f"./{text}" and _as_the_node_reads(tmp_path, value) == (
            "STRING", f"./{text}")
    for text in ("default", "ckpt.pt", "/models/1e3", "1e3.pt"):
        assert lc.parameter_override("checkpoint", text) == text


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
    helpers = {"canet_ros.launch_config": lc, "canet_ros.launch_multi_camera": mc}
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in helpers:
            used.add(node.module)
            for alias in node.names:
                assert hasattr(helpers[node.module], alias.name), alias.name
    assert used, "the launch file's logic should come from the plain-Python helpers"


def test_launch_helper_does_not_import_torch():
    code = ("import sys, canet_ros.launch_config, canet_ros.launch_multi_camera; "
            "sys.exit(1 if 'torch' in sys.modules or 'rclpy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


# -- Fast DDS profile for large images -------------------------------------------------------
def test_the_node_gets_the_large_image_profile_unless_dds_is_already_chosen(tmp_path):
    profile = str((REPO / "config" / lc.DDS_PROFILE).resolve())
    assert lc.dds_environment("", REPO, {}) == dict.fromkeys(lc.FASTDDS_PROFILE_VARIABLES,
                                                             profile)
    assert resolve(namespace="cam").environment == lc.dds_environment("", REPO, os.environ)
    own = tmp_path / "mine.xml"
    own.write_text("<profiles/>")
    assert set(lc.dds_environment(str(own), REPO, {}).values()) == {str(own)}
    for environ in ({"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"},
                    {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/mine.xml"},
                    {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}):
        assert lc.dds_environment("", REPO, environ) == {}, environ
    assert lc.dds_environment("none", REPO, {}) == {}
    with pytest.raises(lc.LaunchConfigError, match="dds_profile"):
        lc.dds_environment("/nonexistent/profile.xml", REPO, {})


def test_large_image_profile_gives_a_big_shared_memory_segment():
    import xml.etree.ElementTree as ET
    ns = {"p": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(REPO / "config" / lc.DDS_PROFILE).getroot()
    shm, = [t for t in root.iterfind("p:transport_descriptors/p:transport_descriptor", ns)
            if t.findtext("p:type", namespaces=ns) == "SHM"]
    # Writers put whole samples in their segment: a 1920x1200 bgr8 frame and its
    # four outputs (labels, colour, overlay, confidence) must fit at once.
    frame = 1920 * 1200 * 3
    assert int(shm.findtext("p:segment_size", namespaces=ns)) >= frame + 2 * frame + 2 * frame / 3
    participant, = root.iterfind("p:participant", ns)
    assert participant.get("is_default_profile") == "true"
    used = [t.text for t in participant.iterfind("p:rtps/p:userTransports/p:transport_id", ns)]
    assert shm.findtext("p:transport_id", namespaces=ns) in used
    assert participant.findtext("p:rtps/p:useBuiltinTransports", namespaces=ns) == "false"


def test_setup_installs_every_config_file():
    """Check colcon installs config/ through setup.py's data_files: the DDS profile too."""
    tree = ast.parse((REPO / "setup.py").read_text())
    patterns = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                and isinstance(n.value, str) and n.value.startswith("config/")]
    installed = {path.name for pattern in patterns for path in REPO.glob(pattern)}
    shipped = {path.name for path in (REPO / "config").iterdir()
               if path.suffix in (".yaml", ".xml")}
    assert lc.DDS_PROFILE in shipped and shipped <= installed, sorted(shipped - installed)
