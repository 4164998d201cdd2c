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


"""Edges of the launch files' params_file check and of the node's callback-fault log.

Each test kills a mutant of this session's code that the other tests let live.
"""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_lc3_multi_camera_pushed_namespace_file_image_topic_is_kept(tmp_path):
    import canet_ros.launch_multi_camera as mc
    path = tmp_path / "robot1.yaml"
    path.write_text("/robot1/cam_front/segmentation_node:\n  ros__parameters:\n"
                    "    image_topic: /my/front\n")
    values = {arg.name: arg.default for arg in mc.multi_camera_arguments()}
    plans = dict(mc.resolve_multi_camera_launch(dict(values, params_file=str(path)), REPO,
                                                pushed_namespace="/robot1"))
    # the file sets cam_front's topic: the launch must not override it with a default
    assert "image_topic" not in plans["front"].overrides, plans["front"].overrides


def test_pf6_malformed_yaml_is_left_to_the_node(tmp_path):
    from canet_ros.params_file import unreached_node
    path = tmp_path / "bad.yaml"
    path.write_text("a: [\n")
    assert unreached_node(path, "/segmentation_node") is None


def test_pf1_a_yaml_list_is_left_to_rcl(tmp_path):
    from canet_ros.params_file import unreached_node
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    assert unreached_node(path, "/segmentation_node") is None


def test_node5_node6_a_repeated_fault_is_throttled():
    from canet_ros.ros import node as process
    calls = []

    class Logger:
        def error(self, text, **kw):
            calls.append(("error", kw))

        def debug(self, text, **kw):
            calls.append(("debug", text))

    class Node:
        def get_logger(self):
            return Logger()
    reported = set()
    for _ in range(3):
        try:
            raise RuntimeError("x")
        except RuntimeError as exc:
            process._report_callback_error(Node(), "m.cb", exc, reported)
    errors = [kw for kind, kw in calls if kind == "error"]
    assert errors[0] == {} and all(kw.get("throttle_duration_sec", 0) >= 1 for kw in errors[1:])
    debugs = [t for kind, t in calls if kind == "debug"]
    assert len(debugs) == 1 and "Traceback" in debugs[0]  # node7
