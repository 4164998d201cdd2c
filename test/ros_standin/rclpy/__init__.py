"""Stand-in for rclpy, used ONLY when the real rclpy cannot be imported (test/conftest.py).

It keeps the real API's names and signatures (Humble and Jazzy) for everything
canet_ros.ros uses, and enforces what real rclpy enforces where it matters to that
code: parameter declaration/typing/ranges/read-only and set callbacks, message field
types (uint8[] as array.array('B'), byte as bytes, float64 as float), topic and node
name rules, QoS matching, logger call-site rules, executors and callback groups.

Topics are carried in-process by a tiny "graph" (rclpy/context.py). Test-only hooks
(deliver a message, read what was published, fake a subscriber, fire timers, read
logs) live apart in ``standin_testing.py`` so the node under test never sees them.
"""
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.utilities import (
    get_default_context,
    ok,  # noqa: F401
)
from rclpy.utilities import shutdown as _shutdown
from rclpy.utilities import try_shutdown as _try_shutdown

__all__ = ["Context", "Parameter", "create_node", "get_default_context", "init", "ok",
           "shutdown", "spin", "spin_once", "try_shutdown"]

_global_executor = None


def init(*, args=None, context=None, domain_id=None, signal_handler_options=None):
    (get_default_context() if context is None else context).init(args, domain_id=domain_id)


def shutdown(*, context=None, uninstall_handlers=None):
    _shutdown(context=context)


def try_shutdown(*, context=None, uninstall_handlers=None):
    _try_shutdown(context=context)


def create_node(node_name, *, context=None, cli_args=None, namespace=None,
                use_global_arguments=True, enable_rosout=True, start_parameter_services=True,
                parameter_overrides=None, allow_undeclared_parameters=False,
                automatically_declare_parameters_from_overrides=False,
                enable_logger_service=False):
    from rclpy.node import Node
    return Node(node_name, context=context, cli_args=cli_args, namespace=namespace,
                use_global_arguments=use_global_arguments, enable_rosout=enable_rosout,
                start_parameter_services=start_parameter_services,
                parameter_overrides=parameter_overrides,
                allow_undeclared_parameters=allow_undeclared_parameters,
                automatically_declare_parameters_from_overrides=(
                    automatically_declare_parameters_from_overrides))


def get_global_executor():
    global _global_executor
    if _global_executor is None:
        from rclpy.executors import SingleThreadedExecutor
        _global_executor = SingleThreadedExecutor()

        def reset():
            global _global_executor
            _global_executor.shutdown()
            _global_executor = None
        get_default_context().on_shutdown(reset)
    return _global_executor


def spin_once(node, *, executor=None, timeout_sec=None):
    executor = get_global_executor() if executor is None else executor
    try:
        executor.add_node(node)
        executor.spin_once(timeout_sec=timeout_sec)
    finally:
        executor.remove_node(node)


def spin(node, executor=None):
    executor = get_global_executor() if executor is None else executor
    try:
        executor.add_node(node)
        while executor.context.ok():
            executor.spin_once()
    finally:
        executor.remove_node(node)
