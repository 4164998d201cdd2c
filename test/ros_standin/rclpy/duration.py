"""rclpy.duration stand-in."""
from builtin_interfaces.msg import Duration as DurationMsg

_NS = 1_000_000_000


class Duration:
    def __init__(self, *, seconds=0, nanoseconds=0):
        self._nanoseconds = int(seconds * _NS) + int(nanoseconds)

    @property
    def nanoseconds(self):
        return self._nanoseconds

    def to_msg(self):
        return DurationMsg(sec=self._nanoseconds // _NS, nanosec=self._nanoseconds % _NS)

    def __eq__(self, other):
        return isinstance(other, Duration) and other.nanoseconds == self.nanoseconds

    def __lt__(self, other):
        return self.nanoseconds < other.nanoseconds

    def __repr__(self):
        return f"Duration(nanoseconds={self._nanoseconds})"
