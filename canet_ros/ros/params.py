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

"""The node's parameters: one table, pure-Python validation, and their declaration.

Everything above ``declare_parameters`` is plain Python (no rclpy, no torch), so
the rules can be unit-tested and reused by the launch helper. Only the
declaration helpers touch rcl_interfaces, and they import it lazily.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from canet_ros.ros.param_hints import ROS_NAMES, type_hint

# Mirrors canet_ros.models.BACKBONES (a test keeps them equal); repeated here because
# importing the models pulls in torch, which a launch file must not pay for.
BACKBONE_CHOICES: Tuple[str, ...] = ("mobilenetv2", "resnet18", "resnet101")
# The model shipped in canet_ros/weights, selected by checkpoint "default".
BUNDLED_BACKBONE = "mobilenetv2"
# bf16/int8: CPU only, refused at start-up where the CPU lacks the instructions;
# auto: the fastest CPU precision within the accuracy rule (docs/performance.md),
# fp32 on CUDA.
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16", "int8")
TRANSPORT_CHOICES = ("raw", "compressed")
RELIABILITY_CHOICES = ("best_effort", "reliable")
COLOR_ENCODING_CHOICES = ("rgb8", "bgr8")
# "network": outputs at the network's size, as segnet, Isaac ROS and Autoware publish masks.
OUTPUT_SIZE_CHOICES = ("input", "network")
_DEVICE = re.compile(r"(auto|cpu|cuda(:\d+)?)\Z")
_RESOLUTION = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*\Z")
_TOPIC_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Same bounds as canet_ros.inference.preprocess (a test keeps them equal): CANet
# downsamples 32x, so a smaller side has no 1/32 feature map.
MIN_SIDE, MAX_SIDE = 32, 16384


class ParamError(ValueError):
    """A parameter value the node cannot start (or continue) with; message says which."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    read_only: bool = True
    choices: Tuple[str, ...] = ()
    float_range: Optional[Tuple[float, float]] = None
    limits: str = ""  # what a value must be, for specs neither choices nor a range describe

    @property
    def constraints(self) -> str:
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        if self.float_range:
            return f"{self.float_range[0]} to {self.float_range[1]}"
        return self.limits


SPECS: Tuple[ParamSpec, ...] = (
    ParamSpec("backbone", BUNDLED_BACKBONE, "CANet backbone; must match the checkpoint",
              choices=BACKBONE_CHOICES),
    ParamSpec("checkpoint", "default",
              "'default' = the bundled mobilenetv2 CamVid model, otherwise a .pt path; "
              "empty is refused (resnet backbones have no bundled model)"),
    ParamSpec("device", "auto", "auto, cpu, cuda or cuda:N (cuda fails at start-up without "
              "CUDA)"),
    ParamSpec("precision", "auto", "auto: on the CPU the fastest within the accuracy rule "
              "(int8 once its calibration is cached, else bf16 or fp32), fp32 on CUDA; "
              "fp16 needs CUDA; bf16 and int8 a CPU with them",
              choices=PRECISION_CHOICES),
    ParamSpec("resolution", "", "network input WIDTHxHEIGHT, e.g. 480x360; empty = the "
              "checkpoint's training size. Outputs are at the input frame's size unless "
              "output_size is network",
              limits=f"WIDTHxHEIGHT, each side {MIN_SIDE} to {MAX_SIDE} pixels; or empty"),
    ParamSpec("overlay_alpha", 0.5, "weight of the colour mask in segmentation/overlay; can "
              "change at runtime", read_only=False, float_range=(0.0, 1.0)),
    ParamSpec("image_topic", "/camera/image_raw",
              "input topic; with input_transport compressed, <image_topic>/compressed "
              "(image_topic itself where it ends in /compressed)"),
    ParamSpec("input_transport", "raw", "raw: sensor_msgs/Image; compressed: "
              "sensor_msgs/CompressedImage (JPEG/PNG)", choices=TRANSPORT_CHOICES),
    ParamSpec("qos_reliability", "best_effort", "input subscription reliability; reliable for "
              "reliable cameras and bag replays made reliable (docs/ros.md; still depth 1: "
              "only the latest frame is kept)",
              choices=RELIABILITY_CHOICES),
    ParamSpec("publish_confidence", False, "also publish segmentation/confidence (mono8, max "
              "softmax x 255)"),
    ParamSpec("stats_period", 5.0, "seconds between FPS/latency reports (log and /diagnostics)",
              float_range=(0.1, 3600.0)),
    ParamSpec("class_colors", "", "class colours YAML file (class name: [R, G, B] or "
              "'#rrggbb', any of the model's classes; docs/ros.md) for segmentation/color and "
              "overlay; empty = the checkpoint's colours"),
    ParamSpec("color_encoding", "rgb8", "channel order of segmentation/color: rgb8, or bgr8 "
              "as Isaac ROS (color_segmentation_mask_encoding) and Autoware draw their colour "
              "masks", choices=COLOR_ENCODING_CHOICES),
    ParamSpec("output_size", "input", "size of every output: input (the camera frame's) or "
              "network (the network's resolution, as segnet, Isaac ROS and Autoware publish "
              "masks; the overlay is drawn on the frame resized to it)",
              choices=OUTPUT_SIZE_CHOICES),
)
SPEC_BY_NAME: Dict[str, ParamSpec] = {spec.name: spec for spec in SPECS}


@dataclass(frozen=True)
class NodeConfig:
    backbone: str
    checkpoint: str
    device: str
    precision: str
    resolution: Optional[Tuple[int, int]]
    overlay_alpha: float
    image_topic: str
    input_transport: str
    qos_reliability: str
    publish_confidence: bool
    stats_period: float
    class_colors: str
    color_encoding: str
    output_size: str

    @property
    def input_topic(self) -> str:
        """image_transport's naming: the compressed stream lives under <topic>/compressed.

        An image_topic that already ends in /compressed names that stream itself.
        """
        if self.input_transport == "compressed" and not self.image_topic.endswith("/compressed"):
            return f"{self.image_topic}/compressed"
        return self.image_topic


def parse_resolution(text: str) -> Optional[Tuple[int, int]]:
    """Parse 'WIDTHxHEIGHT' to (width, height); '' gives None (use the checkpoint's)."""
    if not isinstance(text, str):
        raise ParamError(f"resolution must be a string like '480x360', got {text!r}")
    if not text.strip():
        return None
    match = _RESOLUTION.match(text)
    if not match:
        raise ParamError(f"resolution {text!r} is not WIDTHxHEIGHT (e.g. '480x360')")
    width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ParamError(f"resolution {text!r}: width and height must be between {MIN_SIDE} "
                         f"and {MAX_SIDE} pixels")
    return width, height


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise ParamError(f"{name} {value!r} is not one of: {', '.join(choices)}")
    return str(value)


def check_device(value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE.match(value):
        raise ParamError(f"device {value!r} is not one of: auto, cpu, cuda, cuda:N")
    return value


def check_topic(name: str, value: Any) -> str:
    """Check a ROS topic name (relative or absolute, no ~ or substitutions).

    Returned without a trailing '/', which ROS names may not carry.
    """
    if not isinstance(value, str) or not value.strip():
        raise ParamError(f"{name} must be a non-empty topic name")
    value = value.strip()
    if len(value) > 1:
        value = value.rstrip("/")
    body = value[1:] if value.startswith("/") else value
    if not body or not all(_TOPIC_TOKEN.match(token) for token in body.split("/")):
        raise ParamError(f"{name} {value!r} is not a valid ROS topic name (tokens of letters, "
                         "digits and '_', not starting with a digit, separated by '/')")
    return value


def check_overlay_alpha(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value) or not 0.0 <= value <= 1.0:
        raise ParamError(f"overlay_alpha must be a number from 0.0 to 1.0, got {value!r}")
    return float(value)


def check_checkpoint(checkpoint: Any, backbone: str) -> str:
    """Refuse empty and backbone-mismatched "default" before any file is read."""
    if not isinstance(checkpoint, str) or not checkpoint.strip():
        if backbone == BUNDLED_BACKBONE:
            raise ParamError(
                f"checkpoint is empty: set checkpoint:=default for the bundled "
                f"{BUNDLED_BACKBONE} model, or checkpoint:=/path/to/canet_{backbone}.pt for "
                "one trained with 'canet train'")
        raise ParamError(
            f"checkpoint is empty: no bundled model exists for backbone {backbone!r}. "
            f"Set checkpoint:=/path/to/canet_{backbone}.pt (a model trained with "
            f"'canet train'), or use backbone:={BUNDLED_BACKBONE} checkpoint:=default")
    if checkpoint.strip() == "default" and backbone != BUNDLED_BACKBONE:
        raise ParamError(
            f"checkpoint 'default' is the bundled {BUNDLED_BACKBONE} model, but backbone is "
            f"{backbone!r}; set checkpoint:=/path/to/canet_{backbone}.pt")
    return checkpoint.strip()


def check_checkpoint_file(checkpoint: str) -> str:
    """Refuse a checkpoint path that is not a file, at once, before torch is loaded."""
    if checkpoint == "default":
        return checkpoint
    path = Path(checkpoint).expanduser()
    expanded = f" ({path})" if str(path) != checkpoint else ""
    # Worded as canet_ros.checkpoint's loader words it; "no such file" misleads for a folder.
    if path.is_dir():
        raise ParamError(f"checkpoint {checkpoint!r}{expanded}: a folder, not a checkpoint file")
    if not path.is_file():
        raise ParamError(f"checkpoint {checkpoint!r}: no such file{expanded}")
    return checkpoint


def _typed(values: Mapping[str, Any], name: str, kind: type) -> Any:
    value = values.get(name, SPEC_BY_NAME[name].default)
    if value is None and kind is str:
        value = ""  # a YAML key without a value ("checkpoint:") reaches rclpy as NOT_SET
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ParamError(f"{name} must be of type {kind.__name__}, got {value!r}")
    return value


def validate_config(values: Mapping[str, Any]) -> NodeConfig:
    """Check every parameter together; raise ParamError naming the first bad one."""
    backbone = check_choice("backbone", _typed(values, "backbone", str), BACKBONE_CHOICES)
    period = _typed(values, "stats_period", float)
    low, high = SPEC_BY_NAME["stats_period"].float_range or (0.0, math.inf)
    if not low <= period <= high:
        raise ParamError(f"stats_period must be between {low} and {high} s, got {period}")
    transport = _typed(values, "input_transport", str)
    device = check_device(_typed(values, "device", str))
    precision = check_choice("precision", _typed(values, "precision", str), PRECISION_CHOICES)
    if precision == "fp16" and device == "cpu":
        raise ParamError("precision 'fp16' needs a CUDA device; device is 'cpu' (use fp32)")
    return NodeConfig(
        backbone=backbone,
        checkpoint=check_checkpoint(_typed(values, "checkpoint", str), backbone),
        device=device,
        precision=precision,
        resolution=parse_resolution(_typed(values, "resolution", str)),
        overlay_alpha=check_overlay_alpha(_typed(values, "overlay_alpha", float)),
        image_topic=check_topic("image_topic", _typed(values, "image_topic", str)),
        input_transport=check_choice("input_transport", transport, TRANSPORT_CHOICES),
        qos_reliability=check_choice("qos_reliability", _typed(values, "qos_reliability", str),
                                     RELIABILITY_CHOICES),
        publish_confidence=_typed(values, "publish_confidence", bool),
        stats_period=period,
        class_colors=_typed(values, "class_colors", str).strip(),
        color_encoding=check_choice("color_encoding", _typed(values, "color_encoding", str),
                                    COLOR_ENCODING_CHOICES),
        output_size=check_choice("output_size", _typed(values, "output_size", str),
                                 OUTPUT_SIZE_CHOICES),
    )


def check_runtime_update(changes: Iterable[Tuple[str, Any]]) -> Optional[str]:
    """Return why a runtime set-parameters request must be refused, or None to accept it.

    Names this node does not own (use_sim_time, ...) are let through: other
    parts of rclpy handle them, and refusing would break them.
    """
    for name, value in changes:
        spec = SPEC_BY_NAME.get(name)
        if spec is None:
            continue
        refusal = read_only_refusal([name])
        if refusal is not None:
            return refusal
        try:
            if name == "overlay_alpha":
                check_overlay_alpha(value)
        except ParamError as exc:
            return str(exc)
    return None


def read_only_refusal(names: Iterable[str]) -> Optional[str]:
    """Return why a change to ``names`` is refused when one of them is read-only, else None."""
    for name in names:
        spec = SPEC_BY_NAME.get(name)
        if spec is not None and spec.read_only:
            return (f"parameter '{name}' is read-only: it is fixed when the node starts; "
                    "restart the node to change it")
    return None


def unknown_parameters(given: Iterable[str], known: Iterable[str]) -> Optional[str]:
    """Describe the given parameters this node does not have, or None when there are none.

    rclpy keeps values for undeclared names without a word, so a misspelt name or one
    from another node's configuration (segnet's ``mask_filter``) would silently do
    nothing; the closest name this node has is suggested where one is near.
    """
    unknown = sorted(set(given) - set(known))
    return f"ignoring {_not_ours(unknown)}" if unknown else None


def undeclared_refusal(names: Iterable[str], declared: Iterable[str]) -> Optional[str]:
    """Say why setting ``names`` at run time is refused when one is not ``declared``, else None.

    rclpy's own refusal names no parameter ("undeclared parameter(s): []": it lists a
    generator it has already consumed); this one names them, as the start-up warning does.
    """
    unknown = sorted(set(names) - set(declared))
    return f"cannot set {_not_ours(unknown)}" if unknown else None


def _not_ours(unknown: List[str]) -> str:
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, [spec.name for spec in SPECS], n=1, cutoff=0.75)
        if name in ROS_NAMES:  # a launch argument or remap taken for a parameter
            parts.append(f"'{name}' ({ROS_NAMES[name]})")
        else:
            parts.append(f"'{name}' (did you mean '{close[0]}'?)" if close else f"'{name}'")
    return (f"parameter{'s' if len(unknown) > 1 else ''} this node does not have: "
            f"{', '.join(parts)}; its parameters are {', '.join(s.name for s in SPECS)} "
            "(docs/ros.md)")


def make_descriptor(spec: ParamSpec) -> Any:
    """rcl_interfaces/ParameterDescriptor for one spec (imports ROS lazily)."""
    from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor

    descriptor = ParameterDescriptor(description=spec.description,
                                     additional_constraints=spec.constraints,
                                     read_only=spec.read_only)
    if spec.float_range is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.float_range[0]), to_value=float(spec.float_range[1]),
            step=0.0)]
    return descriptor


def declare_parameters(node: Any) -> Dict[str, Any]:
    """Declare every spec on ``node`` and return the values it ended up with.

    rclpy enforces types and ranges against overrides (launch/YAML/-p) right here;
    its exceptions become ParamError so start-up reports them like any other bad value.
    """
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    values: Dict[str, Any] = {}
    for spec in SPECS:
        try:
            values[spec.name] = _declare(node, spec)
        except InvalidParameterTypeException as exc:
            hint = type_hint(spec.name, spec.default)
            raise ParamError(f"parameter '{spec.name}': {exc}{hint}") from exc
        except InvalidParameterValueException as exc:
            raise ParamError(f"parameter '{spec.name}': {exc}") from exc
    return values


def _declare(node: Any, spec: ParamSpec) -> Any:
    """Declare one spec and return its value, also where rclpy declared it already.

    ``automatically_declare_parameters_from_overrides`` declares each override with a
    plain descriptor before this runs: such a parameter is declared again, with the
    spec's descriptor, so the override's value passes the same type and range checks.
    One declared read-only (by a subclass, on purpose) cannot be: its value is read as
    it is, and validate_config still checks it.
    """
    from rclpy.exceptions import ParameterImmutableException

    if node.has_parameter(spec.name):
        try:
            node.undeclare_parameter(spec.name)
        except ParameterImmutableException:
            return node.get_parameter(spec.name).value
    return node.declare_parameter(spec.name, spec.default, make_descriptor(spec)).value
