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

"""What multi_camera.launch.py decides, as plain Python (no ``launch`` import, no torch).

Two cameras, each a segmentation node of its own: per camera a namespace, image_topic
and input_transport (``<prefix>_<name>``); every other argument is segment.launch.py's,
shared by both. Each camera's values are checked and planned by
:func:`canet_ros.launch_config.resolve_segment_launch`.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Mapping, Optional, Tuple, Union

from canet_ros.launch_config import (
    NODE_NAME,
    SEGMENT_ARGUMENTS,
    LaunchArgument,
    LaunchConfigError,
    SegmentLaunchPlan,
    check_given_arguments,
    check_namespace,
    resolve_segment_launch,
)
from canet_ros.params_file import full_node_name, sets_parameter, unreached_nodes
from canet_ros.ros.params import SPEC_BY_NAME

# multi_camera.launch.py: (argument prefix, default namespace). A camera's image_topic left
# empty is image_raw in its namespace unless params_file is set (camera_image_topic).
CAMERAS: Tuple[Tuple[str, str], ...] = (
    ("front", "cam_front"),
    ("rear", "cam_rear"),
)
# Set per camera (<prefix>_<name>); every other argument applies to both cameras.
PER_CAMERA = ("namespace", "image_topic", "input_transport")
SHARED_ARGUMENTS = tuple(a for a in SEGMENT_ARGUMENTS if a.name not in PER_CAMERA)


def camera_image_topic(namespace: str) -> str:
    """``/<namespace>/image_raw``: where a camera's input is when nothing else says."""
    inner = check_namespace(namespace).strip("/")
    return f"/{inner}/image_raw" if inner else "/image_raw"


def _camera_topic_argument(prefix: str, namespace: str) -> LaunchArgument:
    spec = SPEC_BY_NAME["image_topic"]
    return LaunchArgument(
        f"{prefix}_image_topic",
        f"{prefix} camera: {spec.description}; empty: the params file's image_topic where "
        f"it sets one for this node, else /<{prefix}_namespace>/image_raw "
        f"({camera_image_topic(namespace)} by default)")


def multi_camera_arguments() -> Tuple[LaunchArgument, ...]:
    """multi_camera.launch.py's arguments: the per-camera ones, then the shared ones."""
    per_camera: List[LaunchArgument] = []
    for prefix, namespace in CAMERAS:
        for arg in SEGMENT_ARGUMENTS:
            if arg.name == "image_topic":
                per_camera.append(_camera_topic_argument(prefix, namespace))
            elif arg.name in PER_CAMERA:
                default = namespace if arg.name == "namespace" else arg.default
                per_camera.append(LaunchArgument(f"{prefix}_{arg.name}",
                                                 f"{prefix} camera: {arg.description}",
                                                 default))
    return tuple(per_camera) + SHARED_ARGUMENTS


MULTI_CAMERA_ARGUMENT_NAMES = tuple(a.name for a in multi_camera_arguments())


def _file_sets_image_topic(values: Mapping[str, str], pushed: Optional[str]) -> bool:
    path = values["params_file"].strip()
    node = full_node_name(check_namespace(values["namespace"]), NODE_NAME, pushed)
    return bool(path) and sets_parameter(Path(path).expanduser(), node, "image_topic")


def resolve_multi_camera_launch(arguments: Mapping[str, str], share_dir: Union[str, Path],
                                environ: Optional[Mapping[str, str]] = None,
                                pushed_namespace: Optional[str] = None
                                ) -> List[Tuple[str, SegmentLaunchPlan]]:
    """One (camera prefix, plan) per camera: its own arguments over the shared ones.

    A camera's empty image_topic leaves the topic to params_file when that file sets one
    for the camera's node; otherwise (the shipped YAML has one /camera/image_raw for every
    node) it becomes image_raw in the camera's namespace, so the nodes read their own.
    """
    check_given_arguments(arguments, MULTI_CAMERA_ARGUMENT_NAMES, "multi_camera.launch.py")
    plans = []
    for prefix, _ in CAMERAS:
        values = {a.name: str(arguments.get(a.name, "") or "") for a in SHARED_ARGUMENTS}
        values.update({name: str(arguments.get(f"{prefix}_{name}", "") or "")
                       for name in PER_CAMERA})
        try:
            if not values["image_topic"].strip() and not _file_sets_image_topic(
                    values, pushed_namespace):
                values["image_topic"] = camera_image_topic(values["namespace"])
            plans.append((prefix, resolve_segment_launch(values, share_dir, environ,
                                                         check_reach=False)))
        except LaunchConfigError as exc:
            raise LaunchConfigError(f"{prefix} camera: {exc}") from None
    # One camera's settings alone are a use of the file; reaching neither is the mistake.
    if str(arguments.get("params_file", "") or "").strip() and (reason := unreached_nodes(
            plans[0][1].params_file,
            [full_node_name(p.namespace, NODE_NAME, pushed_namespace) for _, p in plans])):
        raise LaunchConfigError(reason)
    namespaces = [plan.namespace.strip("/") for _, plan in plans]
    if len(set(namespaces)) < len(namespaces):
        raise LaunchConfigError(f"the cameras need different namespaces, got "
                                f"{', '.join(repr(n) for n in namespaces)}: two nodes of one "
                                "name in one namespace clash")
    return plans
