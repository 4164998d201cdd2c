"""rclpy.impl stand-in."""
