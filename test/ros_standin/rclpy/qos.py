"""rclpy.qos stand-in: policies, QoSProfile (with rclpy's history/depth rule) and presets."""
from enum import IntEnum


class InvalidQoSProfileException(Exception):
    def __init__(self, *args):
        super().__init__("Invalid QoSProfile", *args)


class QoSHistoryPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    KEEP_LAST = 1
    KEEP_ALL = 2
    UNKNOWN = 3


class QoSReliabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    RELIABLE = 1
    BEST_EFFORT = 2
    UNKNOWN = 3


class QoSDurabilityPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    TRANSIENT_LOCAL = 1
    VOLATILE = 2
    UNKNOWN = 3


class QoSLivelinessPolicy(IntEnum):
    SYSTEM_DEFAULT = 0
    AUTOMATIC = 1
    MANUAL_BY_TOPIC = 3
    UNKNOWN = 4


HistoryPolicy = QoSHistoryPolicy
ReliabilityPolicy = QoSReliabilityPolicy
DurabilityPolicy = QoSDurabilityPolicy
LivelinessPolicy = QoSLivelinessPolicy

_KNOWN = ("history", "depth", "reliability", "durability", "lifespan", "deadline",
          "liveliness", "liveliness_lease_duration", "avoid_ros_namespace_conventions")


class QoSProfile:
    """Only the policies the stand-in acts on are typed; the rest are stored as given."""

    def __init__(self, **kwargs):
        unknown = [k for k in kwargs if k not in _KNOWN]
        assert not unknown, f"Invalid arguments passed to constructor: {unknown!r}"
        if "history" not in kwargs:
            if "depth" not in kwargs:
                raise InvalidQoSProfileException("History and/or depth settings are required.")
            kwargs["history"] = QoSHistoryPolicy.KEEP_LAST
        self.history = QoSHistoryPolicy(kwargs["history"])
        if self.history == QoSHistoryPolicy.KEEP_LAST and "depth" not in kwargs:
            raise InvalidQoSProfileException("History set to KEEP_LAST without a depth setting.")
        self.depth = int(kwargs.get("depth", 10))
        self.reliability = QoSReliabilityPolicy(
            kwargs.get("reliability", QoSReliabilityPolicy.RELIABLE))
        self.durability = QoSDurabilityPolicy(
            kwargs.get("durability", QoSDurabilityPolicy.VOLATILE))
        self.liveliness = QoSLivelinessPolicy(
            kwargs.get("liveliness", QoSLivelinessPolicy.SYSTEM_DEFAULT))
        self.lifespan = kwargs.get("lifespan")
        self.deadline = kwargs.get("deadline")
        self.liveliness_lease_duration = kwargs.get("liveliness_lease_duration")
        self.avoid_ros_namespace_conventions = bool(
            kwargs.get("avoid_ros_namespace_conventions", False))

    def __eq__(self, other):
        if not isinstance(other, QoSProfile):
            return False
        return all(getattr(self, k) == getattr(other, k) for k in _KNOWN)

    def __repr__(self):
        return (f"QoSProfile(history={self.history!r}, depth={self.depth}, "
                f"reliability={self.reliability!r}, durability={self.durability!r})")


qos_profile_sensor_data = QoSProfile(
    history=QoSHistoryPolicy.KEEP_LAST, depth=5,
    reliability=QoSReliabilityPolicy.BEST_EFFORT, durability=QoSDurabilityPolicy.VOLATILE)
qos_profile_system_default = QoSProfile(
    history=QoSHistoryPolicy.SYSTEM_DEFAULT, reliability=QoSReliabilityPolicy.SYSTEM_DEFAULT,
    durability=QoSDurabilityPolicy.SYSTEM_DEFAULT)
qos_profile_parameters = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=1000)


def as_profile(qos_or_depth):
    """Turn Node.create_*'s qos argument into a profile (not a public rclpy name)."""
    if isinstance(qos_or_depth, QoSProfile):
        return qos_or_depth
    if isinstance(qos_or_depth, int) and not isinstance(qos_or_depth, bool):
        return QoSProfile(depth=qos_or_depth)
    raise TypeError(f"Expected QoSProfile or int, but received {type(qos_or_depth)!r}")
