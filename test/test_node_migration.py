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

"""What a user coming from segnet, Isaac ROS or Autoware brings along, given to the node.

A segnet params file holds names this node lacks and an ``overlay_alpha`` on segnet's
0-255 scale; Isaac ROS and Autoware draw their colour masks in bgr8.
"""
import numpy as np
import pytest
from ros_helpers import (
    as_array,
    assert_labels_vary,
    check_color_and_overlay,
    image_msg,
    palette,
    synthetic_frame,
)

SEGNET_PARAMS = """/**:
  ros__parameters:
    model_name: fcn-resnet18-cityscapes-1024x512
    class_colors_path: colors.txt
    mask_filter: point
    overlay_alpha: 180.0
"""


@pytest.mark.usefixtures("ros")
def test_unknown_names_are_named_even_when_a_known_one_is_out_of_range(tmp_path):
    from ros_processes import start_node
    params = tmp_path / "segnet_params.yaml"
    params.write_text(SEGNET_PARAMS)
    run = start_node("--params-file", str(params), name="segnet params")
    code = run.wait(120)
    run.stop()
    assert code == 1, run.output
    fatal = [line for _, line in run.lines if "[FATAL]" in line]
    assert len(fatal) == 1 and "overlay_alpha" in fatal[0], run.output
    warned = [line for _, line in run.lines if "[WARN]" in line and "does not have" in line]
    assert len(warned) == 1, run.output
    for words in ("'class_colors_path' (did you mean 'class_colors'?)", "'mask_filter'",
                  "'model_name'"):
        assert words in warned[0], warned[0]
    assert "'overlay_alpha'" not in warned[0].split(";")[0], warned[0]
    # The warning comes first: it may be what explains the failure.
    assert run.output.index("does not have") < run.output.index("[FATAL]"), run.output


@pytest.mark.usefixtures("one_torch_thread")
def test_color_encoding_bgr8_reverses_the_palette_and_leaves_the_overlay(rig):
    node = rig.node(color_encoding="bgr8")
    got = rig.listen(node, "labels", "color", "overlay")
    bgr = synthetic_frame(seed=6)
    rig.send(node, image_msg(bgr, "bgr8"))
    out = rig.wait_for(got)
    labels = as_array(out["labels"])
    assert_labels_vary(labels)
    assert out["color"].encoding == "bgr8"
    color = as_array(out["color"])
    # CamVid's palette has colours whose channels differ: a missed swap shows.
    assert (palette()[labels] != palette()[labels][..., ::-1]).any()
    np.testing.assert_array_equal(color, palette()[labels][..., ::-1])
    check_color_and_overlay(labels, color[..., ::-1], as_array(out["overlay"]), bgr, "bgr",
                            alpha=0.5)


@pytest.mark.usefixtures("one_torch_thread")
def test_color_encoding_bgr8_without_a_colour_subscriber_still_publishes_the_rest(rig):
    # No colour made (nobody reads it): nothing to swap, and the frame must not fail.
    node = rig.node(color_encoding="bgr8")
    got = rig.listen(node, "labels", "overlay")
    bgr = synthetic_frame(seed=7)
    rig.send(node, image_msg(bgr, "bgr8"))
    out = rig.wait_for(got)
    labels = as_array(out["labels"])
    assert_labels_vary(labels)
    check_color_and_overlay(labels, palette()[labels], as_array(out["overlay"]), bgr, "bgr",
                            alpha=0.5)


def test_color_encoding_takes_only_the_two_orders():
    from canet_ros.ros.params import ParamError, validate_config
    assert validate_config({}).color_encoding == "rgb8"
    assert validate_config({"color_encoding": "bgr8"}).color_encoding == "bgr8"
    with pytest.raises(ParamError, match="color_encoding 'rgba8' is not one of: rgb8, bgr8"):
        validate_config({"color_encoding": "rgba8"})
