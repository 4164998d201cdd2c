"""Stand-in for the ROS 2 std_msgs package (test-only; see rclpy/__init__.py)."""
