"""rclpy.clock stand-in: ROS time is system time (no /clock simulation)."""
import time as _time

from rclpy.clock_type import ClockType
from rclpy.time import Time


class Clock:
    def __init__(self, *, clock_type=ClockType.SYSTEM_TIME):
        self._clock_type = ClockType(clock_type)

    @property
    def clock_type(self):
        return self._clock_type

    def now(self):
        source = _time.monotonic_ns if self._clock_type == ClockType.STEADY_TIME else _time.time_ns
        return Time(nanoseconds=source(), clock_type=self._clock_type)


class ROSClock(Clock):
    def __init__(self):
        super().__init__(clock_type=ClockType.ROS_TIME)
