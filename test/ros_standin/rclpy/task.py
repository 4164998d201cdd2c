"""rclpy.task stand-in: a minimal Future."""
import threading


class Future:
    def __init__(self):
        self._event = threading.Event()
        self._result = None
        self._exception = None

    def done(self):
        return self._event.is_set()

    def result(self):
        if self._exception is not None:
            raise self._exception
        return self._result

    def set_result(self, result):
        self._result = result
        self._event.set()

    def set_exception(self, exception):
        self._exception = exception
        self._event.set()
