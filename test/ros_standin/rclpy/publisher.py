"""rclpy.publisher stand-in.

publish() checks the type as rclpy does, then hands each matched subscription its
own deep copy (real publishing serialises, so the caller may reuse its message).
Test hooks: ``_standin_published`` keeps a copy of everything published and
``_standin_extra_subscribers`` adds to get_subscription_count(); read them through
standin_testing, not directly.
"""
import copy
import threading


class Publisher:
    def __init__(self, node, msg_type, topic, qos_profile, callback_group):
        self._node = node
        self.msg_type = msg_type
        self.topic = topic
        self.qos_profile = qos_profile
        self.callback_group = callback_group
        self._destroyed = False
        self._lock = threading.Lock()
        self._standin_published = []
        self._standin_extra_subscribers = 0

    @property
    def topic_name(self):
        return self.topic

    @property
    def handle(self):
        return self

    def publish(self, msg):
        if self._destroyed:
            raise RuntimeError(f"publisher on {self.topic} was destroyed")
        if not isinstance(msg, self.msg_type):
            raise TypeError(f"Expected {self.msg_type}, got {type(msg)}")
        graph = self._node.context._standin_graph
        with self._lock:
            self._standin_published.append(copy.deepcopy(msg))
        for subscription in graph.subscriptions_for(self):
            subscription._standin_enqueue(copy.deepcopy(msg))
        graph.notify()

    def get_subscription_count(self):
        graph = self._node.context._standin_graph
        return len(graph.subscriptions_for(self)) + self._standin_extra_subscribers

    def assert_liveliness(self):
        pass

    def destroy(self):
        self._node.destroy_publisher(self)
