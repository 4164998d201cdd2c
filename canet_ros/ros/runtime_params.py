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

"""Parameter changes while the node runs, refused in the node's own words.

rclpy refuses a read-only parameter ("Trying to set a read-only parameter") and an
undeclared one ("Invalid access to undeclared parameter(s): []", a list it emptied
itself) before any on-set callback runs, so neither says which name or why. The two
entry points below (the parameter services call ``set_parameters_atomically``) refuse
those first, naming the parameter and, for a misspelt one, the nearest name it has.
"""
from __future__ import annotations

from typing import Any, Iterable, List, Optional

from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterNotDeclaredException

from canet_ros.ros.params import check_runtime_update, read_only_refusal, undeclared_refusal


class UndeclaredParameterError(ParameterNotDeclaredException):
    """rclpy's type, so its callers and parameter services handle it as theirs; our text.

    The services turn it into the refusal's reason (``ros2 param set`` prints it).
    """

    def __init__(self, reason: str) -> None:
        Exception.__init__(self, reason)  # rclpy's __init__ would prefix its own words


class RuntimeParameters:
    """Mixin for the segmentation Node: runtime changes are checked before rclpy's checks.

    Checks apply once the node sets ``_accepting_changes`` (after its start-up
    declarations) and until it is torn down; before that rclpy's own checks run.
    """

    _accepting_changes = False

    def set_parameters(self, parameter_list: List[Any]) -> List[SetParametersResult]:
        self._refuse_undeclared(p.name for p in parameter_list)  # nothing set: as rclpy does
        # super() with arguments: a comprehension is a scope of its own before Python 3.12.
        return [self._refusal([p]) or super(RuntimeParameters, self).set_parameters([p])[0]
                for p in parameter_list]

    def set_parameters_atomically(self, parameter_list: List[Any]) -> SetParametersResult:
        self._refuse_undeclared(p.name for p in parameter_list)
        return self._refusal(parameter_list) or super().set_parameters_atomically(parameter_list)

    def _refuse_undeclared(self, names: Iterable[str]) -> None:
        # A node made with allow_undeclared_parameters takes any name, as rclpy lets it;
        # names declared from overrides (automatically_declare_...) are declared here.
        if not self._accepting_changes or getattr(self, "_allow_undeclared_parameters", False):
            return
        names = list(names)
        reason = undeclared_refusal(names, [n for n in names if self.has_parameter(n)])
        if reason is not None:
            raise UndeclaredParameterError(reason)

    def _refusal(self, parameters: List[Any]) -> Optional[SetParametersResult]:
        if not self._accepting_changes:
            return None  # rclpy's own set-up, and start-up declarations: rclpy's checks
        reason = read_only_refusal(p.name for p in parameters)
        return None if reason is None else SetParametersResult(successful=False, reason=reason)

    def _on_set_parameters(self, parameters: List[Any]) -> SetParametersResult:
        reason = check_runtime_update((p.name, p.value) for p in parameters)
        if reason is not None:
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)
