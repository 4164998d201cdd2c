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

"""What the node ends up with when a launch argument is left at its default.

The launch files' promises (docs/ros.md, docs/own_data.md, ``--show-args``): an empty
argument keeps the params file's value; a camera of multi_camera.launch.py reads
``/<namespace>/image_raw`` unless params_file or its image_topic says otherwise; a
checkpoint runs at its own training size unless a resolution is asked for, and
``resolution:=checkpoint`` asks for that size over a params file's. Each plan is turned
into the parameter files launch_ros hands the node, and rcl reads them in a real rclpy
node, so the checks are on the values the node would start with.
"""
import os
from pathlib import Path

import pytest

from canet_ros import launch_config as lc
from canet_ros import launch_multi_camera as mc
from canet_ros.ros import params

REPO = Path(__file__).resolve().parents[1]
FRONT_TOPIC, REAR_TOPIC = "/robot/front_camera/image_color", "/robot/rear_camera/image_color"
# A user's single params file for both cameras (docs/ros.md): shared values under /**,
# each camera's topic in its node's own section.
PER_CAMERA_PARAMS = f"""
/**:
  ros__parameters:
    checkpoint: /models/own.pt
    resolution: "128x96"
/cam_front/segmentation_node:
  ros__parameters:
    image_topic: {FRONT_TOPIC}
    input_transport: compressed
/cam_rear/segmentation_node:
  ros__parameters:
    image_topic: {REAR_TOPIC}
"""


def node_values(plan: lc.SegmentLaunchPlan) -> dict:
    """Return the parameters a segmentation node started from ``plan`` is given.

    launch_ros's own Node action (built as the launch files build it) writes the override
    file, and an rclpy node of the same name and namespace reads every file in its order.
    """
    from launch import LaunchContext
    rclpy = pytest.importorskip("rclpy")
    from rclpy.node import Node

    from canet_ros.ros.launch_actions import segmentation_node

    action = segmentation_node(plan)
    action._perform_substitutions(LaunchContext())
    files = [path for path, is_file in action._Node__expanded_parameter_arguments if is_file]
    args = ["--ros-args"] + [arg for path in files for arg in ("--params-file", path)]
    context = rclpy.Context()
    rclpy.init(args=args, context=context)
    try:
        node = Node(lc.NODE_NAME, namespace=plan.namespace or "/", context=context,
                    automatically_declare_parameters_from_overrides=True,
                    start_parameter_services=False, enable_rosout=False)
        given = {name: node.get_parameter(name).value for name in params.SPEC_BY_NAME
                 if node.has_parameter(name)}
        node.destroy_node()
        return given
    finally:
        rclpy.shutdown(context=context)
        for path in files[1:]:  # launch_ros's temporary override files
            os.unlink(path)


def node_config(plan: lc.SegmentLaunchPlan) -> params.NodeConfig:
    """Check what the node was given as it does at start-up (unset names: its defaults)."""
    return params.validate_config(node_values(plan))


def launch_defaults(**given: str) -> dict:
    """multi_camera.launch.py's values: every argument's default, then those given."""
    values = {arg.name: arg.default for arg in mc.multi_camera_arguments()}
    values.update(given)
    return values


@pytest.fixture(autouse=True)
def _need_launch_ros():
    pytest.importorskip("launch_ros", reason="ROS 2 launch is not installed")


# -- multi_camera.launch.py: each camera's input topic ---------------------------------------
def test_a_params_file_with_per_camera_topics_decides_them(tmp_path):
    own = tmp_path / "cameras.yaml"
    own.write_text(PER_CAMERA_PARAMS)
    plans = dict(mc.resolve_multi_camera_launch(launch_defaults(params_file=str(own)), REPO))
    front, rear = node_config(plans["front"]), node_config(plans["rear"])
    assert (front.image_topic, front.input_transport) == (FRONT_TOPIC, "compressed")
    assert (rear.image_topic, rear.input_transport) == (REAR_TOPIC, "raw")
    assert front.resolution == rear.resolution == (128, 96)
    # Nothing was set on the command line, so nothing is overridden.
    assert plans["front"].overrides == plans["rear"].overrides == {}
    # A camera's own argument still wins over the file.
    plans = dict(mc.resolve_multi_camera_launch(
        launch_defaults(params_file=str(own), rear_image_topic="/rear/raw"), REPO))
    assert node_config(plans["front"]).image_topic == FRONT_TOPIC
    assert node_config(plans["rear"]).image_topic == "/rear/raw"


def test_without_a_params_file_each_camera_reads_image_raw_in_its_namespace():
    plans = dict(mc.resolve_multi_camera_launch(launch_defaults(), REPO))
    topics = {prefix: node_config(plan).image_topic for prefix, plan in plans.items()}
    assert topics == {"front": "/cam_front/image_raw", "rear": "/cam_rear/image_raw"}
    plans = dict(mc.resolve_multi_camera_launch(
        launch_defaults(front_namespace="/robot/left/", rear_namespace="right",
                        rear_image_topic="/usb_cam/image_raw"), REPO))
    assert node_config(plans["front"]).image_topic == "/robot/left/image_raw"
    assert node_config(plans["rear"]).image_topic == "/usb_cam/image_raw"


@pytest.mark.parametrize("text, front, rear", [
    # Sets no image_topic: each camera still reads its own.
    ("/**:\n  ros__parameters:\n    checkpoint: default\n",
     "/cam_front/image_raw", "/cam_rear/image_raw"),
    # One camera's node, nested one namespace token per level: the other reads its own.
    ("cam_front:\n  segmentation_node:\n    ros__parameters:\n      image_topic: /f\n",
     "/f", "/cam_rear/image_raw"),
    # For every node: the file decides, for both.
    ("/**:\n  ros__parameters:\n    image_topic: /shared\n", "/shared", "/shared"),
    ("/*/segmentation_node:\n  ros__parameters:\n    image_topic: /any\n", "/any", "/any"),
])
def test_a_params_file_decides_only_the_topics_it_sets(tmp_path, text, front, rear):
    own = tmp_path / "cameras.yaml"
    own.write_text(text)
    plans = dict(mc.resolve_multi_camera_launch(launch_defaults(params_file=str(own)), REPO))
    # What the node reads: rcl's own matching of the file's sections, through rclpy.
    assert node_config(plans["front"]).image_topic == front
    assert node_config(plans["rear"]).image_topic == rear


def test_camera_topic_arguments_say_what_empty_means():
    arguments = {arg.name: arg for arg in mc.multi_camera_arguments()}
    for prefix, namespace in (("front", "cam_front"), ("rear", "cam_rear")):
        argument = arguments[f"{prefix}_image_topic"]
        # Empty by default: ros2 launch refuses name:= so a default could never be undone.
        assert argument.default == ""
        assert "image_topic where it sets one for this node" in argument.description
        assert f"/{namespace}/image_raw" in argument.description
        assert arguments[f"{prefix}_namespace"].default == namespace


# -- resolution: the checkpoint's own size ---------------------------------------------------
@pytest.mark.parametrize("backbone", params.BACKBONE_CHOICES)
def test_a_checkpoint_runs_at_its_training_size_unless_told(backbone):
    # docs/own_data.md: checkpoint:=model.pt alone; the checkpoint carries its input size.
    given = {"checkpoint": "/models/trained_at_64x48.pt"}
    if backbone != "mobilenetv2":
        given["backbone"] = backbone
    assert node_config(lc.resolve_segment_launch(given, REPO)).resolution is None
    sized = lc.resolve_segment_launch(dict(given, resolution="1024x512"), REPO)
    assert node_config(sized).resolution == (1024, 512)


def test_the_bundled_model_still_runs_at_480x360():
    checkpoint = pytest.importorskip("canet_ros.checkpoint")
    config = node_config(lc.resolve_segment_launch({}, REPO))
    assert (config.checkpoint, config.resolution) == ("default", None)
    # None: the engine takes the checkpoint's input_size; CamVid frames are 480x360.
    blob = checkpoint.read_checkpoint(checkpoint.resolve_checkpoint("default"))
    assert tuple(blob["input_size"]) == (480, 360)


def test_resolution_checkpoint_overrides_a_params_file_size(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text('/**:\n  ros__parameters:\n    resolution: "256x128"\n')
    keep = lc.resolve_segment_launch({"params_file": str(own)}, REPO)
    assert node_config(keep).resolution == (256, 128)  # empty argument: the file's value
    plan = lc.resolve_segment_launch({"params_file": str(own), "resolution": "checkpoint"},
                                     REPO)
    assert plan.overrides == {"resolution": ""}
    assert node_values(plan)["resolution"] == ""
    assert node_config(plan).resolution is None
    for _, camera in mc.resolve_multi_camera_launch(
            launch_defaults(params_file=str(own), resolution="checkpoint"), REPO):
        assert node_config(camera).resolution is None


def test_resolution_argument_offers_checkpoint():
    described = {arg.name: arg.description for arg in lc.SEGMENT_ARGUMENTS}
    assert "'checkpoint'" in described["resolution"]
    # A user who tries resolution:="''" learns the word that works.
    with pytest.raises(lc.LaunchConfigError, match="WIDTHxHEIGHT.*'checkpoint'"):
        lc.resolve_segment_launch({"resolution": "''"}, REPO)
