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

"""The launch files' namespace check accepts what rclpy's validator accepts, no more."""
import pytest

from canet_ros.launch_config import LaunchConfigError, check_namespace

CASES = ["cam", "/cam", "/robot/cam_front", "cam/", "/", "", "//cam", "///cam", "/robot//cam",
         "1cam", "/robot/1cam", "cam-front", "cam front", "/_cam", "a/b/c/d"]


def rclpy_accepts(namespace: str) -> bool:
    validate = pytest.importorskip("rclpy.validate_namespace").validate_namespace
    absolute = "/" + namespace[1:] if namespace.startswith("/") else "/" + namespace
    try:
        return bool(validate(absolute))
    except Exception:  # rclpy's InvalidNamespaceException
        return False


@pytest.mark.parametrize("namespace", CASES)
def test_the_namespace_check_agrees_with_rclpy(namespace):
    # The check forgives trailing '/' (it returns the name without them), so rclpy judges
    # the same name without them; an empty name is no namespace.
    kept = namespace.strip().rstrip("/")
    try:
        check_namespace(namespace)
        accepted = True
    except LaunchConfigError:
        accepted = False
    assert accepted == (kept == "" or rclpy_accepts(kept))
