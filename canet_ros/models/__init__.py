"""CANet models. Pure torch: no ROS, no file formats, no I/O."""
from .backbones import BACKBONES, BackboneWeightsError
from .canet import CANet, build_canet, canet_mobilenetv2, canet_resnet18, canet_resnet101
from .complexity import count_macs, count_params

__all__ = [
    "BACKBONES", "BackboneWeightsError", "CANet", "build_canet", "canet_mobilenetv2",
    "canet_resnet18", "canet_resnet101", "count_macs", "count_params",
]
