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

"""What the launch files decide, as plain Python (no ``launch`` import).

``launch/segment.launch.py`` and ``launch/multi_camera.launch.py`` declare the arguments
listed here and hand their values to :func:`resolve_segment_launch` /
:func:`canet_ros.launch_multi_camera.resolve_multi_camera_launch` (one call of the first
per camera), which pick the per-backbone YAML, check every value and build typed
parameter overrides. Every node parameter is a launch argument; empty
values mean "not set": the YAML decides (``resolution:=checkpoint`` sets the node's empty
resolution; multi_camera.launch.py gives a camera without params_file or image_topic
``/<namespace>/image_raw``). A ``name:=value`` the file does not declare
stops the launch (:func:`check_given_arguments`): ros2 launch itself accepts any. It also
decides the Fast DDS profile the node runs with (large images, docs/ros.md). Torch is
never imported, so ``ros2 launch`` stays quick.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from canet_ros.params_file import full_node_name, unreached_node
from canet_ros.ros.params import (
    BACKBONE_CHOICES,
    SPEC_BY_NAME,
    SPECS,
    ParamError,
    check_choice,
    check_device,
    check_overlay_alpha,
    check_topic,
    parse_resolution,
)

PACKAGE = "canet_ros"
DEFAULT_BACKBONE = "mobilenetv2"
NODE_EXECUTABLE = "segmentation_node"
NODE_NAME = "segmentation_node"
# Shipped in share/canet_ros/config: a shared-memory segment large enough for camera frames.
DDS_PROFILE = "fastdds_large_images.xml"
# Fast DDS 2.x (Humble, Iron, Jazzy) reads only the first; Fast DDS 3.x (Kilted, Rolling)
# only the second, while rmw_fastrtps 9.3+ still reads the first itself and logs a
# deprecation WARN for it in every process. Either one set by the user is the user's choice.
FASTDDS_PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
# ROS_DISTRO values whose Fast DDS (Fast-RTPS before 2.0) reads only the first; any other
# name is Kilted or newer.
FAST_DDS_2_DISTROS = ("ardent", "bouncy", "crystal", "dashing", "eloquent", "foxy",
                      "galactic", "humble", "iron", "jazzy")
NO_DDS_PROFILE = "none"
# `ros2 launch --launch-prefix X` arrives as the launch argument launch-prefix:=X.
ROS2_LAUNCH_OPTIONS = ("launch-prefix", "launch-prefix-filter")
_NAMESPACE_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BOOLEANS = {"true": True, "false": False}
# resolution:=checkpoint sets the node's "" (the checkpoint's training input size): an
# empty launch argument keeps the params file's value, ros2 launch refuses resolution:=,
# and resolution:="''" arrives as two quote characters.
RESOLUTION_OF_CHECKPOINT = "checkpoint"


class LaunchConfigError(ValueError):
    """A launch argument that cannot work; the message names it and what is allowed."""


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    description: str
    default: str = ""


# What a launch argument does beyond setting its parameter.
_NOTES = {"backbone": "; picks config/canet_<backbone>.yaml unless params_file is set",
          "resolution": f"; as a launch argument '{RESOLUTION_OF_CHECKPOINT}' = the "
                        "checkpoint's training size, even where the params file sets one"}


# Values the shipped config/canet_<backbone>.yaml files set per backbone (a test reads the
# files); every other parameter ships with the node's own default. resolution is not
# here: every file leaves it empty, so each checkpoint runs at its training size.
SHIPPED_PER_BACKBONE = {
    "checkpoint": {"mobilenetv2": "default", "resnet18": "", "resnet101": ""},
}


def _shipped(name: str) -> str:
    per_backbone = SHIPPED_PER_BACKBONE.get(name)
    if per_backbone is None:
        default = SPEC_BY_NAME[name].default
        return repr(str(default).lower() if isinstance(default, bool) else default)
    return ", ".join(f"{value!r} for {backbone}" for backbone, value in per_backbone.items())


def _parameter_argument(name: str) -> LaunchArgument:
    spec = SPEC_BY_NAME[name]
    extra = (f" ({spec.constraints})" if spec.constraints else "") + _NOTES.get(name, "")
    # An empty launch argument is "not given", whatever an empty parameter means (for
    # resolution, "the checkpoint's size": that takes the word _NOTES gives).
    return LaunchArgument(name, f"{spec.description}{extra}; this argument left empty "
                          f"sets nothing: the params file's value stands (shipped: "
                          f"{_shipped(name)})")


# Every node parameter (canet_ros.ros.params.SPECS), then the launch file's own arguments.
SEGMENT_ARGUMENTS: Tuple[LaunchArgument, ...] = tuple(
    _parameter_argument(spec.name) for spec in SPECS) + (
    LaunchArgument("namespace", "namespace for the node and its segmentation/* outputs"),
    LaunchArgument("params_file", "a ros__parameters YAML used instead of "
                   f"config/canet_<backbone>.yaml (empty: that file, backbone {DEFAULT_BACKBONE} "
                   "when unset)"),
    LaunchArgument("use_sim_time", "true: the node's ROS clock follows /clock (bag replay "
                   "with 'ros2 bag play --clock'); this argument left empty sets nothing: the "
                   "params file's value stands (shipped: false)"),
    LaunchArgument("dds_profile", f"Fast DDS XML profile for the node (empty: config/"
                   f"{DDS_PROFILE}, for large images; '{NO_DDS_PROFILE}': Fast DDS defaults). "
                   "Ignored when FASTRTPS_/FASTDDS_DEFAULT_PROFILES_FILE is already set or "
                   "another RMW is selected"),
)
SEGMENT_ARGUMENT_NAMES = tuple(a.name for a in SEGMENT_ARGUMENTS)


@dataclass(frozen=True)
class SegmentLaunchPlan:
    """What segment.launch.py starts: one node, a YAML, and the overrides on top."""

    namespace: str
    params_file: Path
    overrides: Dict[str, Any] = field(default_factory=dict)  # typed as the node declares them
    environment: Dict[str, str] = field(default_factory=dict)  # for the node process only

    def node_parameters(self, wrap: Optional[Callable[[str], Any]] = None) -> List[Any]:
        """launch_ros ``parameters=``: the file first, so the overrides win.

        launch_ros reads plain strings as YAML ("1e3" would become a float, "true" a
        bool); the launch file passes ``wrap`` = ParameterValue(..., value_type=str)
        to keep every string override a string, as the node declares it. Floats and
        booleans go as they are: rclpy refuses an int for a double parameter.
        """
        wrap = wrap or (lambda value: value)
        return [str(self.params_file),
                {k: wrap(v) if isinstance(v, str) else v for k, v in self.overrides.items()}]


def config_file_for(backbone: str, share_dir: Union[str, Path]) -> Path:
    """config/canet_<backbone>.yaml inside the package share directory."""
    _check(check_choice, "backbone", backbone, BACKBONE_CHOICES)
    return Path(share_dir) / "config" / f"canet_{backbone}.yaml"


def check_namespace(value: str) -> str:
    """'' (none), 'cam_front' or '/robot/cam_front'; returned without a trailing '/'."""
    text = value.strip().rstrip("/")
    body = text[1:] if text.startswith("/") else text  # one '/': '//cam' is an empty token
    tokens = body.split("/") if body else []
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


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LaunchConfigError(f"{name} {text!r} is not a number") from None
    low, high = SPEC_BY_NAME[name].float_range or (float("-inf"), float("inf"))
    if not low <= value <= high:  # also refuses nan
        raise LaunchConfigError(f"{name} {text!r} is not within {low} to {high}")
    return value


def parameter_override(name: str, text: str) -> Any:
    """Convert a launch argument's text to the parameter's type, checked as the node would."""
    spec = SPEC_BY_NAME[name]
    if isinstance(spec.default, bool):
        if text.lower() not in _BOOLEANS:
            raise LaunchConfigError(f"{name} {text!r} is not true or false")
        return _BOOLEANS[text.lower()]
    if isinstance(spec.default, float):
        value = _number(name, text)
        return _check(check_overlay_alpha, value) if name == "overlay_alpha" else value
    if spec.choices:
        return _check(check_choice, name, text, spec.choices)
    if name == "device":
        return _check(check_device, text)
    if name == "image_topic":
        return _check(check_topic, name, text)
    if name == "resolution":
        return _resolution_override(text)
    if name in ("checkpoint", "class_colors") and _YAML12_NUMBER.match(text):
        # launch_ros writes string overrides unquoted to a YAML file; rcl reads "1e3" there
        # as a double. "./1e3" names the same file and stays a string.
        return f"./{text}"
    return text


def _resolution_override(text: str) -> str:
    if text.lower() == RESOLUTION_OF_CHECKPOINT:
        return ""  # the node's "not set": the checkpoint's training input size
    try:
        width, height = parse_resolution(text)
    except ParamError as exc:
        raise LaunchConfigError(f"{exc}; or '{RESOLUTION_OF_CHECKPOINT}' for the "
                                "checkpoint's training size") from None
    return f"{width}x{height}"


# What rcl's YAML reading takes for a number but PyYAML (YAML 1.1) dumps as a bare string.
_YAML12_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def given_argument_names(argv: Iterable[str]) -> List[str]:
    """Names of the ``name:=value`` arguments on a ros2 launch command line."""
    return [arg.split(":=", 1)[0] for arg in argv if ":=" in arg]


def check_given_arguments(given: Iterable[str], allowed: Sequence[str], launch_file: str) -> None:
    """Refuse argument names ``launch_file`` does not declare, in one line naming them."""
    unknown = sorted(set(given) - set(allowed) - set(ROS2_LAUNCH_OPTIONS))
    if unknown:
        raise LaunchConfigError(
            f"{launch_file}: unknown launch argument(s) {', '.join(unknown)}; it takes: "
            f"{', '.join(allowed)}")


def started_by_ros2_launch(argv: Iterable[str], configurations: Iterable[str],
                           started_file: Optional[str], this_file: Optional[str]) -> bool:
    """Tell whether ``this_file`` is the file ``ros2 launch`` was asked to run, not an include.

    ``started_file`` is the file ros2 launch's own top launch description includes, and
    ``this_file`` the file whose actions run now; either unknown (``None``) means included.
    A wrapper whose arguments all come from the command line leaves exactly the command
    line's names as launch configurations too, so the names alone cannot tell: only the
    top file checks names, an included one's names are its includer's business. Both
    signals must agree, so a doubtful case checks values only and never refuses a launch.
    """
    if not started_file or not this_file:
        return False
    # launch keeps current_launch_file_path as os.path.abspath(location): compare alike.
    if os.path.abspath(started_file) != os.path.abspath(this_file):
        return False
    return set(configurations) == set(given_argument_names(argv))


def resolve_segment_launch(arguments: Mapping[str, str], share_dir: Union[str, Path],
                           environ: Optional[Mapping[str, str]] = None,
                           check_reach: bool = True,
                           pushed_namespace: Optional[str] = None) -> SegmentLaunchPlan:
    """Validate segment.launch.py's argument values and decide what to start.

    ``environ`` (default: this process's) is where an existing DDS choice is looked for.
    ``check_reach=False`` leaves to the caller whether a params_file reaches the node;
    ``pushed_namespace`` is a PushRosNamespace's around the include.
    """
    check_given_arguments(arguments, SEGMENT_ARGUMENT_NAMES, "segment.launch.py")
    values = {name: str(arguments.get(name, "") or "").strip() for name in SEGMENT_ARGUMENT_NAMES}
    namespace = check_namespace(values["namespace"])
    overrides = {name: parameter_override(name, value) for name, value in values.items()
                 if value and name in SPEC_BY_NAME}
    if values["use_sim_time"]:  # rclpy's own parameter, so not among the node's SPECS
        if values["use_sim_time"].lower() not in _BOOLEANS:
            raise LaunchConfigError(f"use_sim_time {values['use_sim_time']!r} is not true or false")
        overrides["use_sim_time"] = _BOOLEANS[values["use_sim_time"].lower()]
    if values["params_file"]:
        params_file = Path(values["params_file"]).expanduser()
        if not params_file.is_file():
            raise LaunchConfigError(f"params_file {params_file} does not exist")
        node = full_node_name(namespace, NODE_NAME, pushed_namespace)
        if check_reach and (reason := unreached_node(params_file, node)):
            raise LaunchConfigError(reason)
    else:
        params_file = config_file_for(values["backbone"] or DEFAULT_BACKBONE, share_dir)
        if not params_file.is_file():
            raise LaunchConfigError(f"{params_file} is missing: is canet_ros installed "
                                    "(colcon build) and its share directory intact?")
    environment = dds_environment(values["dds_profile"], share_dir,
                                  os.environ if environ is None else environ)
    return SegmentLaunchPlan(namespace=namespace, params_file=params_file.resolve(),
                             overrides=overrides, environment=environment)


def dds_environment(dds_profile: str, share_dir: Union[str, Path],
                    environ: Mapping[str, str]) -> Dict[str, str]:
    """Environment variables that give the node the Fast DDS profile for large images.

    Nothing when the user already chose a profile in ``environ``, picked another RMW
    (Cyclone DDS reads no Fast DDS XML), or said ``dds_profile:=none``; otherwise the
    variable(s) :func:`profile_variables` picks for ``environ``'s ROS distro.
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
    return dict.fromkeys(profile_variables(environ), str(profile.resolve()))


def profile_variables(environ: Mapping[str, str]) -> Tuple[str, ...]:
    """Pick the variable(s) that hand a Fast DDS XML profile to ``environ``'s ROS distro.

    ROS_DISTRO (set by sourcing ROS) tells the Fast DDS major version. Without it both
    are set: each Fast DDS ignores the other's variable, so the profile applies either
    way, at the price of Kilted's deprecation WARN.
    """
    distro = environ.get("ROS_DISTRO", "").strip().lower()
    if not distro:
        return FASTDDS_PROFILE_VARIABLES
    if distro in FAST_DDS_2_DISTROS:
        return ("FASTRTPS_DEFAULT_PROFILES_FILE",)
    return ("FASTDDS_DEFAULT_PROFILES_FILE",)
