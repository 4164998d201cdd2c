"""Stand-in for the ROS 2 rcl_interfaces package (test-only; see rclpy/__init__.py)."""
