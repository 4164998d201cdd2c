"""sensor_msgs/msg stand-ins: Image and CompressedImage (``data`` is uint8[])."""
import array

from _standin_msgs import Message
from std_msgs.msg import Header


def _bytes() -> array.array:
    return array.array("B")


class Image(Message):
    _FIELDS = {
        "header": (Header, Header),
        "height": ("uint32", int),
        "width": ("uint32", int),
        "encoding": ("string", str),
        "is_bigendian": ("uint8", int),
        "step": ("uint32", int),
        "data": ("uint8[]", _bytes),
    }


class CompressedImage(Message):
    _FIELDS = {
        "header": (Header, Header),
        "format": ("string", str),
        "data": ("uint8[]", _bytes),
    }
