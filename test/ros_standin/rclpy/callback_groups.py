"""rclpy.callback_groups stand-in: reentrant and mutually exclusive groups."""
import threading
import weakref


class CallbackGroup:
    def __init__(self) -> None:
        self.entities = set()

    def add_entity(self, entity) -> None:
        self.entities.add(weakref.ref(entity))

    def has_entity(self, entity) -> bool:
        return weakref.ref(entity) in self.entities

    def can_execute(self, entity) -> bool:
        raise NotImplementedError()

    def beginning_execution(self, entity) -> bool:
        raise NotImplementedError()

    def ending_execution(self, entity) -> None:
        raise NotImplementedError()


class ReentrantCallbackGroup(CallbackGroup):
    def can_execute(self, entity):
        return True

    def beginning_execution(self, entity):
        return True

    def ending_execution(self, entity):
        pass


class MutuallyExclusiveCallbackGroup(CallbackGroup):
    def __init__(self):
        super().__init__()
        self._active_entity = None
        self._lock = threading.Lock()

    def can_execute(self, entity):
        with self._lock:
            assert weakref.ref(entity) in self.entities
            return self._active_entity is None

    def beginning_execution(self, entity):
        with self._lock:
            if self._active_entity is None:
                self._active_entity = entity
                return True
        return False

    def ending_execution(self, entity):
        with self._lock:
            assert self._active_entity == entity
            self._active_entity = None
