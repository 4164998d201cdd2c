"""rclpy.node stand-in: Node with the real constructor, names and entity factories."""
import re
import threading

from rcl_interfaces.msg import ParameterDescriptor

from rclpy.callback_groups import CallbackGroup, MutuallyExclusiveCallbackGroup
from rclpy.clock import ROSClock
from rclpy.context import params_for_node, parse_ros_args
from rclpy.exceptions import (
    InvalidNamespaceException,
    InvalidNodeNameException,
    InvalidTopicNameException,
    NotInitializedException,
)
from rclpy.logging import get_logger
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import as_profile
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from rclpy.utilities import get_default_context

from ._standin_parameters import ParameterMixin

_NODE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _validate_namespace(namespace):
    if not namespace.startswith("/"):
        raise InvalidNamespaceException(namespace, "must be absolute", 0)
    if namespace == "/":
        return
    for index, token in enumerate(namespace[1:].split("/")):
        if not _TOKEN.match(token):
            raise InvalidNamespaceException(
                namespace, "tokens must be alphanumeric/underscore, not start with a digit",
                index)


def _validate_topic(topic):
    if not topic:
        raise InvalidTopicNameException(topic, "topic name must not be empty", 0)
    if topic.endswith("/") or "//" in topic:
        raise InvalidTopicNameException(topic, "must not end with '/' or contain '//'",
                                        max(0, topic.find("//")))
    body = topic[1:] if topic[0] in "/~" else topic
    if topic.startswith("~/"):
        body = topic[2:]
    for token in body.split("/") if body else []:
        if not _TOKEN.match(token):
            raise InvalidTopicNameException(
                topic, "tokens must be alphanumeric/underscore, not start with a digit", 0)


class Node(ParameterMixin):
    def __init__(self, node_name, *, context=None, cli_args=None, namespace=None,
                 use_global_arguments=True, enable_rosout=True, start_parameter_services=True,
                 parameter_overrides=None, allow_undeclared_parameters=False,
                 automatically_declare_parameters_from_overrides=False,
                 enable_logger_service=False):
        self._context = get_default_context() if context is None else context
        if not self._context.ok():
            raise NotInitializedException("cannot create node")
        local_args = parse_ros_args(cli_args)
        sources = ([self._context._args] if use_global_arguments else []) + [local_args]
        remaps = {}
        for parsed in sources:
            remaps.update(parsed.remaps)
        node_name = remaps.pop("__node", remaps.pop("__name", node_name))
        namespace = remaps.pop("__ns", namespace) or "/"
        if not namespace.startswith("/"):
            namespace = "/" + namespace
        namespace = namespace.rstrip("/") or "/"
        if not _NODE_NAME.match(node_name):
            raise InvalidNodeNameException(node_name, "must be alphanumeric/underscore", 0)
        _validate_namespace(namespace)
        self._name, self._namespace, self._remaps = node_name, namespace, remaps
        self._destroyed = False
        self._lock = threading.RLock()
        self._parameters, self._descriptors, self._parameters_callbacks = {}, {}, []
        self._allow_undeclared_parameters = allow_undeclared_parameters
        self._parameter_overrides = {}
        for parsed in sources:
            for name, value in params_for_node(parsed, self.get_fully_qualified_name()).items():
                self._parameter_overrides[name] = Parameter(name, value=value)
        for parameter in parameter_overrides or []:
            self._parameter_overrides[parameter.name] = parameter
        logger_name = ".".join(p for p in namespace.split("/") if p)
        self._logger = get_logger(f"{logger_name}.{node_name}" if logger_name else node_name)
        self._clock = ROSClock()
        self._default_callback_group = MutuallyExclusiveCallbackGroup()
        self._publishers, self._subscriptions, self._timers = [], [], []
        if automatically_declare_parameters_from_overrides:
            for name, parameter in self._parameter_overrides.items():
                self._parameters[name] = parameter
                self._descriptors[name] = ParameterDescriptor(dynamic_typing=True)
        if not self.has_parameter("use_sim_time"):
            self.declare_parameter("use_sim_time", False)

    # --- names -----------------------------------------------------------------------
    @property
    def context(self):
        return self._context

    @property
    def default_callback_group(self):
        return self._default_callback_group

    @property
    def publishers(self):
        yield from list(self._publishers)

    @property
    def subscriptions(self):
        yield from list(self._subscriptions)

    @property
    def timers(self):
        yield from list(self._timers)

    def get_name(self):
        return self._name

    def get_namespace(self):
        return self._namespace

    def get_fully_qualified_name(self):
        return f"{self._namespace.rstrip('/')}/{self._name}"

    def get_logger(self):
        return self._logger

    def get_clock(self):
        return self._clock

    def resolve_topic_name(self, topic, *, only_expand=False):
        _validate_topic(topic)
        if topic.startswith("~"):
            expanded = self.get_fully_qualified_name() + topic[1:]
        elif topic.startswith("/"):
            expanded = topic
        else:
            expanded = f"{self._namespace.rstrip('/')}/{topic}"
        if only_expand:
            return expanded
        for source, target in self._remaps.items():
            if self.resolve_topic_name(source, only_expand=True) == expanded:
                return self.resolve_topic_name(target, only_expand=True)
        return expanded

    # --- entities --------------------------------------------------------------------
    def _check_alive(self):
        if self._destroyed:
            raise RuntimeError(f"node {self.get_fully_qualified_name()} has been destroyed")

    def _group(self, callback_group):
        group = self._default_callback_group if callback_group is None else callback_group
        if not isinstance(group, CallbackGroup):
            raise TypeError(f"callback_group must be a CallbackGroup, got {type(group)}")
        return group

    def create_publisher(self, msg_type, topic, qos_profile, *, callback_group=None,
                         event_callbacks=None, qos_overriding_options=None,
                         publisher_class=Publisher):
        self._check_alive()
        publisher = publisher_class(self, msg_type, self.resolve_topic_name(topic),
                                    as_profile(qos_profile), self._group(callback_group))
        graph = self._context._standin_graph
        with graph.lock:
            graph.publishers.append(publisher)
        self._publishers.append(publisher)
        return publisher

    def create_subscription(self, msg_type, topic, callback, qos_profile, *,
                            callback_group=None, event_callbacks=None,
                            qos_overriding_options=None, raw=False):
        self._check_alive()
        if not callable(callback):
            raise TypeError("callback must be callable")
        group = self._group(callback_group)
        subscription = Subscription(self, msg_type, self.resolve_topic_name(topic), callback,
                                    group, as_profile(qos_profile), raw)
        group.add_entity(subscription)
        graph = self._context._standin_graph
        with graph.lock:
            graph.subscriptions.append(subscription)
        self._subscriptions.append(subscription)
        return subscription

    def create_timer(self, timer_period_sec, callback, callback_group=None, clock=None,
                     autostart=True):
        self._check_alive()
        if timer_period_sec <= 0:
            raise ValueError("timer period must be positive")
        group = self._group(callback_group)
        timer = Timer(callback, group, int(timer_period_sec * 1e9),
                      self._clock if clock is None else clock, context=self._context,
                      autostart=autostart)
        group.add_entity(timer)
        self._timers.append(timer)
        self._context._standin_graph.notify()
        return timer

    def destroy_publisher(self, publisher):
        graph = self._context._standin_graph
        with graph.lock:
            if publisher in graph.publishers:
                graph.publishers.remove(publisher)
        if publisher in self._publishers:
            self._publishers.remove(publisher)
            publisher._destroyed = True
            return True
        return False

    def destroy_subscription(self, subscription):
        graph = self._context._standin_graph
        with graph.lock:
            if subscription in graph.subscriptions:
                graph.subscriptions.remove(subscription)
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            return True
        return False

    def destroy_timer(self, timer):
        if timer in self._timers:
            timer.cancel()
            self._timers.remove(timer)
            return True
        return False

    def count_publishers(self, topic_name):
        graph = self._context._standin_graph
        return graph.count(self.resolve_topic_name(topic_name), "publishers")

    def count_subscribers(self, topic_name):
        graph = self._context._standin_graph
        return graph.count(self.resolve_topic_name(topic_name), "subscriptions")

    def destroy_node(self):
        with self._lock:
            if self._destroyed:
                return
            for publisher in list(self._publishers):
                self.destroy_publisher(publisher)
            for subscription in list(self._subscriptions):
                self.destroy_subscription(subscription)
            for timer in list(self._timers):
                self.destroy_timer(timer)
            self._destroyed = True
        self._context._standin_graph.notify()
