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
