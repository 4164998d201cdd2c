"""ROS 2 side of canet_ros: the segmentation node, its parameters and statistics.

Only this subpackage imports rclpy and ROS message packages, and only
``canet_ros.ros.node`` does so at import time: ``params`` and ``stats`` stay plain
Python so the launch helper and tests can use them without ROS.
"""
