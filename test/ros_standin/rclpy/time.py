"""rclpy.time stand-in."""
from builtin_interfaces.msg import Time as TimeMsg

from rclpy.clock_type import ClockType
from rclpy.duration import Duration

_NS = 1_000_000_000


class Time:
    def __init__(self, *, seconds=0, nanoseconds=0, clock_type=ClockType.SYSTEM_TIME):
        total = int(seconds * _NS) + int(nanoseconds)
        if total < 0:
            raise ValueError("Negative times are not allowed")
        self._nanoseconds = total
        self._clock_type = ClockType(clock_type)

    @property
    def nanoseconds(self):
        return self._nanoseconds

    @property
    def clock_type(self):
        return self._clock_type

    def seconds_nanoseconds(self):
        return divmod(self._nanoseconds, _NS)

    def to_msg(self):
        sec, nanosec = self.seconds_nanoseconds()
        return TimeMsg(sec=sec, nanosec=nanosec)

    @classmethod
    def from_msg(cls, msg, clock_type=ClockType.ROS_TIME):
        return cls(seconds=msg.sec, nanoseconds=msg.nanosec, clock_type=clock_type)

    def __sub__(self, other):
        if isinstance(other, Time):
            if other.clock_type != self.clock_type:
                raise TypeError("Can't subtract times with different clock types")
            return Duration(nanoseconds=self._nanoseconds - other.nanoseconds)
        if isinstance(other, Duration):
            return Time(nanoseconds=self._nanoseconds - other.nanoseconds,
                        clock_type=self._clock_type)
        return NotImplemented

    def __add__(self, other):
        if isinstance(other, Duration):
            return Time(nanoseconds=self._nanoseconds + other.nanoseconds,
                        clock_type=self._clock_type)
        return NotImplemented

    def __eq__(self, other):
        return (isinstance(other, Time) and other.nanoseconds == self.nanoseconds
                and other.clock_type == self.clock_type)

    def __lt__(self, other):
        return self.nanoseconds < other.nanoseconds

    def __repr__(self):
        return f"Time(nanoseconds={self._nanoseconds}, clock_type={self._clock_type.name})"
