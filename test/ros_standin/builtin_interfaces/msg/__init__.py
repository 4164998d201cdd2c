"""builtin_interfaces/msg stand-ins: Time and Duration."""
from _standin_msgs import Message


class Time(Message):
    _FIELDS = {"sec": ("int32", int), "nanosec": ("uint32", int)}


class Duration(Message):
    _FIELDS = {"sec": ("int32", int), "nanosec": ("uint32", int)}
