"""rclpy.executors stand-in: single- and multi-threaded executors over the stand-in graph.

As in rclpy, an exception raised by a callback comes out of spin()/spin_once(), and
spin() returns once the context is shut down. Waiting uses the graph's condition,
so an idle executor sleeps instead of polling.
"""
import concurrent.futures
import os
import threading
import time

from rclpy.utilities import get_default_context


class TimeoutException(Exception):
    pass


class ShutdownException(Exception):
    pass


class ExternalShutdownException(Exception):
    pass


class Executor:
    def __init__(self, *, context=None):
        self._context = get_default_context() if context is None else context
        self._nodes = []
        self._nodes_lock = threading.RLock()
        self._is_shutdown = False
        self._round = []

    @property
    def context(self):
        return self._context

    def add_node(self, node):
        with self._nodes_lock:
            if node in self._nodes:
                return False
            self._nodes.append(node)
        self.wake()
        return True

    def remove_node(self, node):
        with self._nodes_lock:
            if node in self._nodes:
                self._nodes.remove(node)
        self.wake()

    def get_nodes(self):
        with self._nodes_lock:
            return list(self._nodes)

    def wake(self):
        self._context._standin_graph.notify()

    def shutdown(self, timeout_sec=None):
        self._is_shutdown = True
        with self._nodes_lock:
            self._nodes.clear()
        self.wake()
        return True

    def spin(self):
        while self._context.ok() and not self._is_shutdown:
            self.spin_once()

    def spin_once(self, timeout_sec=None):
        raise NotImplementedError()

    def _ready_entities(self):
        ready = []
        for node in self.get_nodes():
            ready += [t for t in node.timers if t.is_ready()]
            ready += [s for s in node.subscriptions if s._standin_has_message()]
        return ready

    @staticmethod
    def _claim(entity):
        """Return (callback, argument, entity, group) if ``entity`` can run now, else None."""
        group = entity.callback_group
        if hasattr(entity, "_standin_take"):
            if not entity._standin_has_message() or not group.beginning_execution(entity):
                return None
            msg = entity._standin_take()
            if msg is None:
                group.ending_execution(entity)
                return None
            return entity.callback, msg, entity, group
        if not entity.is_ready() or not group.beginning_execution(entity):
            return None
        entity._standin_mark_called()
        return entity.callback, None, entity, group

    def _next_work(self):
        """Claim one ready item.

        Like rclpy, everything ready after one wait is served (one message each)
        before anything is looked at again, so no busy entity can starve the others.
        """
        for _ in range(2):
            while self._round:
                work = self._claim(self._round.pop(0))
                if work is not None:
                    return work
            self._round = self._ready_entities()
        return None

    def _wait_for_work(self, timeout_sec):
        """Block until some work is claimed; None on timeout."""
        if self._is_shutdown:
            raise ShutdownException()
        deadline = None if timeout_sec is None or timeout_sec < 0 else (
            time.monotonic() + timeout_sec)
        graph = self._context._standin_graph
        with graph.wakeup:
            while True:
                if not self._context.ok():
                    raise ExternalShutdownException()
                if self._is_shutdown:
                    raise ShutdownException()
                work = self._next_work()
                if work is not None:
                    return work
                remaining = self._idle_wait(deadline)
                if remaining is not None and remaining <= 0:
                    return None
                graph.wakeup.wait(remaining)

    def _idle_wait(self, deadline):
        waits = [t.time_until_next_call() for n in self.get_nodes() for t in n.timers]
        waits = [w / 1e9 for w in waits if w is not None]
        if deadline is not None:
            waits.append(deadline - time.monotonic())
        return min(waits) if waits else None

    @staticmethod
    def _run(work):
        callback, msg, entity, group = work
        try:
            if msg is None:
                callback()
            else:
                callback(msg)
        finally:
            group.ending_execution(entity)


class SingleThreadedExecutor(Executor):
    def spin_once(self, timeout_sec=None):
        try:
            work = self._wait_for_work(timeout_sec)
        except ShutdownException:
            return
        if work is not None:
            self._run(work)


class MultiThreadedExecutor(Executor):
    def __init__(self, num_threads=None, *, context=None):
        super().__init__(context=context)
        if num_threads is None:
            num_threads = os.cpu_count() or 2
        if num_threads <= 0:
            raise ValueError("num_threads must be greater than 0")
        self._pool = concurrent.futures.ThreadPoolExecutor(num_threads)
        self._futures = []

    def _raise_finished(self):
        for future in [f for f in self._futures if f.done()]:
            self._futures.remove(future)
            future.result()  # re-raises a callback's exception here, as rclpy does

    def spin_once(self, timeout_sec=None):
        self._raise_finished()
        try:
            work = self._wait_for_work(timeout_sec)
        except ShutdownException:
            return
        if work is not None:
            future = self._pool.submit(self._run, work)
            future.add_done_callback(lambda _f: self.wake())
            self._futures.append(future)

    def shutdown(self, timeout_sec=None):
        super().shutdown(timeout_sec)
        self._pool.shutdown(wait=True)
        return True
