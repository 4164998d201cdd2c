"""Training: config, class weights, poly schedule and the resumable trainer."""
from .config import TrainConfig, add_config_arguments, config_from_args, merge_config
from .losses import class_pixel_counts, enet_class_weights
from .schedule import PolyLR, poly_factor

__all__ = [
    "PolyLR", "TrainConfig", "add_config_arguments", "class_pixel_counts", "config_from_args",
    "enet_class_weights", "merge_config", "poly_factor",
]
