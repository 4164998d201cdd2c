"""rclpy.context stand-in, plus the in-process "graph" that stands in for DDS.

The graph matches publishers and subscriptions by topic, message type and QoS
(a best-effort writer does not reach a reliable reader), counts matches for
get_subscription_count(), and wakes executors when something becomes ready.
``--ros-args`` handling covers what launch files and tests pass: -p/--param,
--params-file, -r/--remap (topics, __node, __ns) and --log-level.
"""
import threading

import yaml

from rclpy.qos import QoSDurabilityPolicy, QoSReliabilityPolicy


class RCLError(RuntimeError):
    pass


class UnknownROSArgsError(RCLError):
    pass


def _flatten(prefix, tree, out):
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            _flatten(name, value, out)
        else:
            out[name] = value
    return out


def _read_params_file(path):
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RCLError(f"Couldn't parse params file: '--params-file {path}' ({exc})") from exc
    entries = []
    for pattern, body in document.items():
        if not isinstance(body, dict) or "ros__parameters" not in body:
            raise RCLError(f"params file {path}: '{pattern}' has no 'ros__parameters' key")
        entries.append((str(pattern), _flatten("", body["ros__parameters"], {})))
    return entries


class _ParsedArgs:
    def __init__(self):
        self.param_sources = []   # (node pattern, {name: value}) in command-line order
        self.remaps = {}          # from -> to (also "__node", "__ns")
        self.log_level = None


def parse_ros_args(args):
    """Split rcl-style arguments; unknown flags inside --ros-args are an error, as in rcl."""
    parsed = _ParsedArgs()
    tokens = list(args or [])
    in_ros, index = False, 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--ros-args":
            in_ros = True
            continue
        if not in_ros:
            continue
        if token == "--":
            in_ros = False
            continue
        if token in ("-p", "--param", "-r", "--remap", "--params-file", "--log-level",
                     "-e", "--enclave"):
            if index >= len(tokens):
                raise UnknownROSArgsError(f"Argument {token} needs a value")
            value = tokens[index]
            index += 1
            if token in ("-p", "--param"):
                name, sep, raw = value.partition(":=")
                if not sep:
                    raise RCLError(f"Couldn't parse parameter override rule: '{value}'")
                parsed.param_sources.append(("/**", {name: yaml.safe_load(raw)}))
            elif token in ("-r", "--remap"):
                source, sep, target = value.partition(":=")
                if not sep:
                    raise RCLError(f"Couldn't parse remap rule: '{value}'")
                parsed.remaps[source] = target
            elif token == "--params-file":
                parsed.param_sources.extend(_read_params_file(value))
            elif token == "--log-level":
                parsed.log_level = value
            continue
        raise UnknownROSArgsError(f"Found unknown ROS arguments: ['{token}']")
    return parsed


def params_for_node(parsed, fully_qualified_name):
    """Return the overrides that apply to one node, later sources winning."""
    name = fully_qualified_name.rsplit("/", 1)[-1]
    selected = {}
    for pattern, values in parsed.param_sources:
        if pattern in ("/**", f"/**/{name}", fully_qualified_name, name.lstrip("/")) or (
                pattern.lstrip("/") == fully_qualified_name.lstrip("/")):
            selected.update(values)
    return selected


def _qos_compatible(publisher_qos, subscription_qos):
    if (publisher_qos.reliability == QoSReliabilityPolicy.BEST_EFFORT
            and subscription_qos.reliability == QoSReliabilityPolicy.RELIABLE):
        return False
    return not (publisher_qos.durability == QoSDurabilityPolicy.VOLATILE
                and subscription_qos.durability == QoSDurabilityPolicy.TRANSIENT_LOCAL)


class _StandinGraph:
    def __init__(self):
        self.lock = threading.RLock()
        self.wakeup = threading.Condition(self.lock)
        self.publishers = []
        self.subscriptions = []

    def matches(self, publisher, subscription):
        return (publisher.topic_name == subscription.topic_name
                and publisher.msg_type is subscription.msg_type
                and _qos_compatible(publisher.qos_profile, subscription.qos_profile))

    def subscriptions_for(self, publisher):
        with self.lock:
            return [s for s in self.subscriptions if self.matches(publisher, s)]

    def count(self, topic_name, kind):
        with self.lock:
            entities = self.publishers if kind == "publishers" else self.subscriptions
            return sum(1 for e in entities if e.topic_name == topic_name)

    def notify(self):
        with self.wakeup:
            self.wakeup.notify_all()


class Context:
    def __init__(self):
        self._lock = threading.Lock()
        self._initialized = False
        self._shutdown = False
        self._callbacks = []
        self._args = _ParsedArgs()
        self._domain_id = 0
        self._standin_graph = _StandinGraph()

    def init(self, args=None, *, initialize_logging=True, domain_id=None):
        with self._lock:
            if self._initialized:
                raise RuntimeError("Context.init() must only be called once")
            self._args = parse_ros_args(args)
            self._domain_id = 0 if domain_id is None else int(domain_id)
            self._initialized = True

    def ok(self):
        with self._lock:
            return self._initialized and not self._shutdown

    def shutdown(self):
        with self._lock:
            if not self._initialized or self._shutdown:
                raise RCLError("failed to shutdown: rcl_shutdown already called on the given "
                               "context")
            self._shutdown = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
        self._standin_graph.notify()

    def try_shutdown(self):
        if self.ok():
            self.shutdown()

    def on_shutdown(self, callback):
        if not callable(callback):
            raise TypeError(f"callback should be a callable, got {type(callback)}")
        with self._lock:
            if not self._shutdown:
                self._callbacks.append(callback)
                return
        callback()

    def get_domain_id(self):
        return self._domain_id
