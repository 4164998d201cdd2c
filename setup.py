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

"""ament_python package that also installs with plain pip (no ROS needed)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "canet_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: [
        "weights/*.pt", "weights/*.md", "training/configs/*.yaml",
        "samples/*/*", "samples/*.md",
    ]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    python_requires=">=3.10",
    # torch/torchvision are deliberately absent: robots (Jetson) carry their own
    # builds and pip must never replace them. See README "Installing torch".
    install_requires=[
        "numpy>=1.21",
        "opencv-python-headless>=4.5",
        "pyyaml>=5.4",
        "tqdm>=4.60",
        "rosbags>=0.11",  # 0.10.x lacks StoragePlugin (<0.10.9) or salvage of split bags
        "mcap>=1.1",  # segment-bag writes its MCAP output (chunk compression, CRCs) with it
        "matplotlib>=3.5",
        "pillow>=8",  # palette PNG masks are read as their indices (data/files.py)
    ],
    extras_require={
        "torch": ["torch>=2.1", "torchvision>=0.16"],
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
        # bf16 and int8 on the CPU (docs/performance.md "CPU precisions"): onnx exports the
        # model for OpenVINO, and int8's graph is made by ONNX Runtime's quantizer.
        "openvino": ["openvino>=2024.1", "onnx>=1.15", "onnxruntime>=1.17"],
        # Compiled loops for camera-size frames on the CPU (inference/kernels.py).
        "numba": ["numba>=0.55"],
        "train": ["tensorboard>=2.12"],
        # PyAV ships FFmpeg with libx264: segment-bag --video writes browser-playable H.264.
        "video": ["av>=10"],
        "test": [
            "pytest>=7", "pytest-xdist>=3.5", "ruff>=0.4", "onnx>=1.15", "onnxruntime>=1.17",
            "openvino>=2024.1", "tensorboard>=2.12", "cityscapesscripts>=2.2", "mcap>=1.1",
            "av>=10", "numba>=0.55",
        ],
    },
    zip_safe=True,
    maintainer="canet_ros developers",
    maintainer_email="canet-ros@example.com",
    description="Real-time semantic segmentation for ROS 2 with CANet (Liu & Yin, ICIP 2019)",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "canet = canet_ros.cli:entry",
            "segmentation_node = canet_ros.ros.node:main",
        ],
    },
)
