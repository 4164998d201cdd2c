"""diagnostic_msgs/msg stand-ins; ``level`` is a ROS ``byte``, i.e. one-byte ``bytes``."""
from _standin_msgs import Message
from std_msgs.msg import Header


class KeyValue(Message):
    _FIELDS = {"key": ("string", str), "value": ("string", str)}


class DiagnosticStatus(Message):
    OK = b"\x00"
    WARN = b"\x01"
    ERROR = b"\x02"
    STALE = b"\x03"
    _FIELDS = {
        "level": ("byte", lambda: b"\x00"),
        "name": ("string", str),
        "message": ("string", str),
        "hardware_id": ("string", str),
        "values": ([KeyValue], list),
    }


class DiagnosticArray(Message):
    _FIELDS = {"header": (Header, Header), "status": ([DiagnosticStatus], list)}
