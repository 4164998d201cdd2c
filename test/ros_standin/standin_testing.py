"""Test-only hooks into the rclpy stand-in. Nothing here exists in real ROS 2.

Tests import this module; the code under test never does. Each hook reaches into
stand-in internals (names starting with ``_standin``) so that the public classes
keep exactly the real API.
"""
from __future__ import annotations

import time
from typing import Any, Callable, List, Tuple

import rclpy
from rclpy.impl import rcutils_logger

IS_STANDIN = not hasattr(rclpy, "__file__") or "ros_standin" in (rclpy.__file__ or "")


def _publisher(node: Any, topic: str) -> Any:
    resolved = node.resolve_topic_name(topic)
    for publisher in node.publishers:
        if publisher.topic_name == resolved:
            return publisher
    raise LookupError(f"{node.get_fully_qualified_name()} has no publisher on {resolved}")


def _subscription(node: Any, topic: str) -> Any:
    resolved = node.resolve_topic_name(topic)
    for subscription in node.subscriptions:
        if subscription.topic_name == resolved:
            return subscription
    raise LookupError(f"{node.get_fully_qualified_name()} has no subscription on {resolved}")


def deliver(node: Any, topic: str, msg: Any) -> None:
    """Run the node's subscription callback for ``topic`` now, in this thread.

    This is what an executor does when a message arrives, minus the queue: use it
    to push bursts faster than any executor would.
    """
    subscription = _subscription(node, topic)
    if not isinstance(msg, subscription.msg_type):
        raise TypeError(f"{subscription.topic_name} carries {subscription.msg_type.__name__}, "
                        f"not {type(msg).__name__}")
    subscription.callback(msg)


def subscription_topics(node: Any) -> List[Tuple[str, type]]:
    return [(s.topic_name, s.msg_type) for s in node.subscriptions]


def subscription_qos(node: Any, topic: str) -> Any:
    return _subscription(node, topic).qos_profile


def publisher_topics(node: Any) -> List[Tuple[str, type]]:
    return [(p.topic_name, p.msg_type) for p in node.publishers]


def published(node: Any, topic: str) -> List[Any]:
    """Return copies of every message the node's publisher on ``topic`` has published."""
    publisher = _publisher(node, topic)
    with publisher._lock:
        return list(publisher._standin_published)


def clear_published(node: Any) -> None:
    for publisher in node.publishers:
        with publisher._lock:
            publisher._standin_published.clear()


def set_fake_subscribers(node: Any, topic: str, count: int) -> None:
    """Make ``get_subscription_count()`` on the node's ``topic`` publisher report more."""
    _publisher(node, topic)._standin_extra_subscribers = int(count)


def fire_timers(node: Any) -> int:
    """Call every live timer's callback once, now; returns how many ran."""
    fired = 0
    for timer in node.timers:
        if not timer.is_canceled():
            timer.callback()
            fired += 1
    return fired


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0,
             interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def log_records() -> List[Tuple[str, int, str]]:
    """(logger name, severity, message) of everything logged so far."""
    with rcutils_logger._standin_lock:
        return list(rcutils_logger._standin_records)


def clear_logs() -> None:
    with rcutils_logger._standin_lock:
        rcutils_logger._standin_records.clear()


def messages_at_least(severity: int) -> List[str]:
    return [message for _, level, message in log_records() if level >= severity]
