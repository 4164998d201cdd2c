"""canet_ros: real-time semantic segmentation for ROS 2 with CANet (Liu & Yin, ICIP 2019)."""

__version__ = "0.1.0"
