"""Choice lists for command-line flags, kept free of torch so ``--help`` stays fast.

The models and datasets themselves live in ``canet_ros.models`` and ``canet_ros.data``,
which import torch; a test checks that these lists name exactly what those define.
"""
from __future__ import annotations

BACKBONES = ("mobilenetv2", "resnet18", "resnet101")
DATASETS = ("camvid", "cityscapes")
