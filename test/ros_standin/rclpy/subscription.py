"""rclpy.subscription stand-in: a QoS-sized queue drained by an executor.

KEEP_LAST keeps only the newest ``depth`` messages, so a slow callback sees what a
real best-effort depth-1 subscription would: the latest frame, older ones gone.
"""
import collections
import threading

from rclpy.qos import QoSHistoryPolicy


class Subscription:
    def __init__(self, node, msg_type, topic, callback, callback_group, qos_profile, raw):
        self._node = node
        self.msg_type = msg_type
        self.topic = topic
        self.callback = callback
        self.callback_group = callback_group
        self.qos_profile = qos_profile
        self.raw = raw
        keep_last = qos_profile.history != QoSHistoryPolicy.KEEP_ALL
        self._queue = collections.deque(maxlen=max(1, qos_profile.depth) if keep_last else None)
        self._queue_lock = threading.Lock()

    @property
    def topic_name(self):
        return self.topic

    @property
    def handle(self):
        return self

    def _standin_enqueue(self, msg):
        with self._queue_lock:
            self._queue.append(msg)

    def _standin_take(self):
        with self._queue_lock:
            return self._queue.popleft() if self._queue else None

    def _standin_has_message(self):
        with self._queue_lock:
            return bool(self._queue)

    def destroy(self):
        self._node.destroy_subscription(self)
