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

"""Everything the launch files decide, as plain Python (no ``launch`` import).

``launch/segment.launch.py`` only declares arguments and, in an OpaqueFunction,
hands their values to :func:`resolve_segment_launch`; this module picks the
per-backbone YAML, checks every value and builds the parameter overrides. Empty
argument values mean "not set": the YAML decides. It also decides the Fast DDS
profile the node runs with (large images, docs/ros.md). Torch is never imported, so
``ros2 launch`` stays quick.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from canet_ros.ros.params import (
    BACKBONE_CHOICES,
    PRECISION_CHOICES,
    TRANSPORT_CHOICES,
    ParamError,
    check_choice,
    check_device,
    check_topic,
    parse_resolution,
)

PACKAGE = "canet_ros"
DEFAULT_BACKBONE = "mobilenetv2"
NODE_EXECUTABLE = "segmentation_node"
NODE_NAME = "segmentation_node"
# Shipped in share/canet_ros/config: a shared-memory segment large enough for camera frames.
DDS_PROFILE = "fastdds_large_images.xml"
# Fast DDS 2.x (Humble, Jazzy) reads the first, 3.x (Kilted) the second.
FASTDDS_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
NO_DDS_PROFILE = "none"
_NAMESPACE_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class LaunchConfigError(ValueError):
    """A launch argument that cannot work; the message names it and what is allowed."""


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    description: str
    default: str = ""


SEGMENT_ARGUMENTS: Tuple[LaunchArgument, ...] = (
    LaunchArgument("backbone", "CANet backbone: " + " | ".join(BACKBONE_CHOICES) +
                   f"; picks config/canet_<backbone>.yaml (empty: {DEFAULT_BACKBONE}, or "
                   "whatever params_file says)"),
    LaunchArgument("resolution", "network input WIDTHxHEIGHT, e.g. 1024x512 (empty: the "
                   "YAML's)"),
    LaunchArgument("image_topic", "input image topic (empty: the YAML's, /camera/image_raw)"),
    LaunchArgument("namespace", "namespace for the node and its segmentation/* outputs"),
    LaunchArgument("checkpoint", "'default' (bundled mobilenetv2 model) or a .pt path; "
                   "required for resnet18/resnet101"),
    LaunchArgument("device", "auto | cpu | cuda | cuda:N (empty: the YAML's)"),
    LaunchArgument("precision", "fp32 | fp16 (fp16 needs CUDA; empty: the YAML's)"),
    LaunchArgument("input_transport", "raw | compressed (compressed subscribes to "
                   "<image_topic>/compressed; empty: the YAML's)"),
    LaunchArgument("params_file", "a ros__parameters YAML used instead of "
                   "config/canet_<backbone>.yaml"),
    LaunchArgument("dds_profile", f"Fast DDS XML profile for the node (empty: config/"
                   f"{DDS_PROFILE}, for large images; '{NO_DDS_PROFILE}': Fast DDS defaults). "
                   "Ignored when FASTRTPS_/FASTDDS_DEFAULT_PROFILES_FILE is already set or "
                   "another RMW is selected"),
)
SEGMENT_ARGUMENT_NAMES = tuple(a.name for a in SEGMENT_ARGUMENTS)
# Arguments that become node parameters of the same name when set.
_OVERRIDABLE = ("backbone", "checkpoint", "device", "precision", "resolution", "image_topic",
                "input_transport")

# multi_camera.launch.py: (argument prefix, default namespace, default image topic).
CAMERAS: Tuple[Tuple[str, str, str], ...] = (
    ("front", "cam_front", "/cam_front/image_raw"),
    ("rear", "cam_rear", "/cam_rear/image_raw"),
)
# Everything but the per-camera ones is shared by both cameras.
SHARED_ARGUMENTS = tuple(a for a in SEGMENT_ARGUMENTS
                         if a.name not in ("namespace", "image_topic"))


@dataclass(frozen=True)
class SegmentLaunchPlan:
    """What segment.launch.py starts: one node, a YAML, and the overrides on top."""

    namespace: str
    params_file: Path
    overrides: Dict[str, str] = field(default_factory=dict)
    environment: Dict[str, str] = field(default_factory=dict)  # for the node process only

    def node_parameters(self, wrap: Optional[Callable[[str], Any]] = None) -> List[Any]:
        """launch_ros ``parameters=``: the file first, so the overrides win.

        launch_ros reads plain strings as YAML ("1e3" would become a float, "true" a
        bool); the launch file passes ``wrap`` = ParameterValue(..., value_type=str)
        to keep every override a string, as the node declares them.
        """
        wrap = wrap or (lambda value: value)
        return [str(self.params_file), {k: wrap(v) for k, v in self.overrides.items()}]


def config_file_for(backbone: str, share_dir: Union[str, Path]) -> Path:
    """config/canet_<backbone>.yaml inside the package share directory."""
    _check(check_choice, "backbone", backbone, BACKBONE_CHOICES)
    return Path(share_dir) / "config" / f"canet_{backbone}.yaml"


def check_namespace(value: str) -> str:
    """'' (none), 'cam_front' or '/robot/cam_front'; returned without a trailing '/'."""
    text = value.strip().rstrip("/")
    tokens = text.lstrip("/").split("/") if text.lstrip("/") else []
    if not all(_NAMESPACE_TOKEN.match(token) for token in tokens):
        raise LaunchConfigError(
            f"namespace {value!r} is not a valid ROS namespace (tokens of letters, digits and "
            "'_', not starting with a digit, separated by '/')")
    return text


def _check(checker: Callable[..., Any], *args: Any) -> Any:
    try:
        return checker(*args)
    except ParamError as exc:
        raise LaunchConfigError(str(exc)) from None


def _overrides(values: Mapping[str, str]) -> Dict[str, str]:
    overrides: Dict[str, str] = {}
    for name in _OVERRIDABLE:
        value = values.get(name, "")
        if not value:
            continue  # unset: the YAML's value stands
        if name == "backbone":
            _check(check_choice, name, value, BACKBONE_CHOICES)
        elif name == "device":
            _check(check_device, value)
        elif name == "precision":
            _check(check_choice, name, value, PRECISION_CHOICES)
        elif name == "input_transport":
            _check(check_choice, name, value, TRANSPORT_CHOICES)
        elif name == "image_topic":
            value = _check(check_topic, name, value)
        elif name == "resolution":
            width, height = _check(parse_resolution, value)
            value = f"{width}x{height}"
        overrides[name] = value
    return overrides


def dds_environment(dds_profile: str, share_dir: Union[str, Path],
                    environ: Mapping[str, str]) -> Dict[str, str]:
    """Environment variables that give the node the Fast DDS profile for large images.

    Nothing when the user already chose a profile in ``environ``, picked another RMW
    (Cyclone DDS reads no Fast DDS XML), or said ``dds_profile:=none``.
    """
    choice = dds_profile.strip()
    if choice == NO_DDS_PROFILE or any(environ.get(v) for v in FASTDDS_PROFILE_VARIABLES):
        return {}
    if environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") not in ("", "rmw_fastrtps_cpp"):
        return {}
    profile = Path(choice).expanduser() if choice else \
        Path(share_dir) / "config" / DDS_PROFILE
    if not profile.is_file():
        raise LaunchConfigError(f"dds_profile {profile} does not exist")
    return dict.fromkeys(FASTDDS_PROFILE_VARIABLES, str(profile.resolve()))


def resolve_segment_launch(arguments: Mapping[str, str], share_dir: Union[str, Path],
                           environ: Optional[Mapping[str, str]] = None) -> SegmentLaunchPlan:
    """Validate segment.launch.py's argument values and decide what to start.

    ``environ`` (default: this process's) is where an existing DDS choice is looked for.
    """
    unknown = sorted(set(arguments) - set(SEGMENT_ARGUMENT_NAMES))
    if unknown:
        raise LaunchConfigError(f"unknown launch argument(s): {', '.join(unknown)}; known: "
                                f"{', '.join(SEGMENT_ARGUMENT_NAMES)}")
    values = {name: str(arguments.get(name, "") or "").strip() for name in SEGMENT_ARGUMENT_NAMES}
    overrides = _overrides(values)
    if values["params_file"]:
        params_file = Path(values["params_file"]).expanduser()
        if not params_file.is_file():
            raise LaunchConfigError(f"params_file {params_file} does not exist")
    else:
        params_file = config_file_for(values["backbone"] or DEFAULT_BACKBONE, share_dir)
        if not params_file.is_file():
            raise LaunchConfigError(f"{params_file} is missing: is canet_ros installed "
                                    "(colcon build) and its share directory intact?")
    environment = dds_environment(values["dds_profile"], share_dir,
                                  os.environ if environ is None else environ)
    return SegmentLaunchPlan(namespace=check_namespace(values["namespace"]),
                             params_file=params_file.resolve(), overrides=overrides,
                             environment=environment)


def multi_camera_include_arguments(camera: str) -> Dict[str, str]:
    """For one camera prefix: segment.launch.py argument -> multi_camera argument name."""
    prefixes = [prefix for prefix, _, _ in CAMERAS]
    if camera not in prefixes:
        raise LaunchConfigError(f"unknown camera {camera!r}; known: {', '.join(prefixes)}")
    mapping = {a.name: a.name for a in SHARED_ARGUMENTS}
    mapping["namespace"] = f"{camera}_namespace"
    mapping["image_topic"] = f"{camera}_image_topic"
    return mapping


def multi_camera_arguments() -> Tuple[LaunchArgument, ...]:
    """multi_camera.launch.py's own arguments: per-camera topic and namespace, then shared."""
    per_camera: List[LaunchArgument] = []
    for prefix, namespace, topic in CAMERAS:
        per_camera.append(LaunchArgument(f"{prefix}_image_topic",
                                         f"input image topic of the {prefix} camera", topic))
        per_camera.append(LaunchArgument(f"{prefix}_namespace",
                                         f"namespace of the {prefix} camera's node", namespace))
    return tuple(per_camera) + SHARED_ARGUMENTS
