# Copyright 2026 canet_ros developers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""The launch actions both launch files share; the decisions are in canet_ros.launch_config.

Imported only by the launch files (ros2 launch has launch and launch_ros at hand); the
rest of the package never imports this module.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_context import LaunchContext
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from canet_ros.launch_config import (
    NODE_EXECUTABLE,
    NODE_NAME,
    PACKAGE,
    LaunchArgument,
    SegmentLaunchPlan,
    check_given_arguments,
    given_argument_names,
    started_by_ros2_launch,
)


def declare(arguments: Sequence[LaunchArgument], launch_file: str) -> List[Any]:
    """Return the argument check, then one DeclareLaunchArgument per argument.

    The check runs before the declarations add their defaults, when the launch
    configurations are still exactly what started this file.
    """
    allowed = [arg.name for arg in arguments]

    def check(context: LaunchContext) -> List[Any]:
        here = context.get_locals_as_dict().get("current_launch_file_path")
        if started_by_ros2_launch(context.argv, context.launch_configurations,
                                  started_file(context), here):
            check_given_arguments(given_argument_names(context.argv), allowed, launch_file)
        return []

    return [OpaqueFunction(function=check)] + [
        DeclareLaunchArgument(arg.name, default_value=arg.default, description=arg.description)
        for arg in arguments]


def started_file(context: LaunchContext) -> Optional[str]:
    """Return the launch file ``ros2 launch`` was asked to run, or None where that is unclear.

    ros2launch (Humble on) runs a launch description holding one IncludeLaunchDescription
    of that file; while it is processed, the event that brought it is ``context.locals.event``.
    A file included from an event handler (OnProcessExit, ...) sees that event instead:
    None, so it counts as included and only its values are checked.
    """
    root = getattr(context.get_locals_as_dict().get("event"), "launch_description", None)
    if not isinstance(root, LaunchDescription):
        return None
    includes = [e for e in root.entities if isinstance(e, IncludeLaunchDescription)]
    return includes[0].launch_description_source.location if len(includes) == 1 else None


def values_of(context: LaunchContext, arguments: Sequence[LaunchArgument]) -> Dict[str, str]:
    return {arg.name: context.launch_configurations.get(arg.name, arg.default)
            for arg in arguments}


def pushed_namespace_of(context: LaunchContext) -> Optional[str]:
    """Return the namespace a PushRosNamespace around this include set (launch_ros adds it)."""
    return context.launch_configurations.get("ros_namespace")


def environment_of(context: LaunchContext) -> Any:
    # Newer launch keeps its own environment (SetEnvironmentVariable); older uses os.environ.
    return getattr(context, "environment", os.environ)


def segmentation_node(plan: SegmentLaunchPlan) -> Node:
    return Node(
        package=PACKAGE,
        executable=NODE_EXECUTABLE,
        name=NODE_NAME,
        namespace=plan.namespace,
        parameters=plan.node_parameters(wrap=lambda text: ParameterValue(text, value_type=str)),
        additional_env=plan.environment,
        output="screen",
        emulate_tty=True,
    )


def nodes_from(plans: Callable[[LaunchContext], Sequence[SegmentLaunchPlan]]) -> OpaqueFunction:
    """Return an action that, once the arguments are known, starts one node per plan."""
    return OpaqueFunction(function=lambda context: [
        segmentation_node(plan) for plan in plans(context)])
