"""Stand-in for the ROS 2 sensor_msgs package (test-only; see rclpy/__init__.py)."""
