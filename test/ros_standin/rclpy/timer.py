"""rclpy.timer stand-in: monotonic periods, fired by executors when due."""
import threading
import time


class Timer:
    def __init__(self, callback, callback_group, timer_period_ns, clock, *, context=None,
                 autostart=True):
        self.callback = callback
        self.callback_group = callback_group
        self._clock = clock
        self._period_ns = int(timer_period_ns)
        self._lock = threading.Lock()
        self._canceled = not autostart
        self._next_call_ns = time.monotonic_ns() + self._period_ns

    @property
    def timer_period_ns(self):
        return self._period_ns

    @timer_period_ns.setter
    def timer_period_ns(self, value):
        with self._lock:
            self._period_ns = int(value)
            self._next_call_ns = time.monotonic_ns() + self._period_ns

    @property
    def handle(self):
        return self

    def is_ready(self):
        with self._lock:
            return not self._canceled and time.monotonic_ns() >= self._next_call_ns

    def time_until_next_call(self):
        with self._lock:
            if self._canceled:
                return None
            return max(0, self._next_call_ns - time.monotonic_ns())

    def _standin_mark_called(self):
        with self._lock:
            now = time.monotonic_ns()
            self._next_call_ns = max(self._next_call_ns + self._period_ns, now)

    def cancel(self):
        with self._lock:
            self._canceled = True

    def is_canceled(self):
        with self._lock:
            return self._canceled

    def reset(self):
        with self._lock:
            self._canceled = False
            self._next_call_ns = time.monotonic_ns() + self._period_ns

    def destroy(self):
        self.cancel()
