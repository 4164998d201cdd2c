"""ROS 2 side of canet_ros: the segmentation node, its parameters and statistics.

Only this subpackage imports rclpy and ROS message packages, and only
``canet_ros.ros.segmentation`` does so at import time. ``node`` (the console
script) imports rclpy when it runs; ``params`` and ``stats`` stay plain Python so the
launch helper and tests can use them without ROS. Nothing here imports torch at
module level: the engine is loaded only after the parameters have been checked.
"""
