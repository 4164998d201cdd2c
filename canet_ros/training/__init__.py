"""Training: config, class weights, poly schedule and the resumable trainer.

Only the config is imported eagerly: ``canet --help`` builds the train parser from it and
must not pay for torch; the rest loads on first use.
"""
from importlib import import_module
from typing import Any

from .config import TrainConfig, add_config_arguments, config_from_args, merge_config

_LAZY = {"class_pixel_counts": "losses", "enet_class_weights": "losses",
         "PolyLR": "schedule", "poly_factor": "schedule"}

__all__ = [
    "PolyLR", "TrainConfig", "add_config_arguments", "class_pixel_counts", "config_from_args",
    "enet_class_weights", "merge_config", "poly_factor",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
