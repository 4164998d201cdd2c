"""std_msgs/msg stand-ins: Header and String."""
from _standin_msgs import Message
from builtin_interfaces.msg import Time


class Header(Message):
    _FIELDS = {"stamp": (Time, Time), "frame_id": ("string", str)}


class String(Message):
    _FIELDS = {"data": ("string", str)}
