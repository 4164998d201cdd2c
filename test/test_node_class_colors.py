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

"""The node's ``class_colors`` parameter: its outputs in the file's colours, bad files.

Expected colours are written out here; the overlay is blended by hand from the labels the
node published. A bad file must end the node's process with one FATAL line naming the file
and the problem (status 1), as any other bad start-up value does.
"""
import sys

import numpy as np
import pytest
from ros_helpers import as_array, assert_labels_vary, image_msg, synthetic_frame
from ros_processes import RosProcess, node_env, start_node

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# CamVid's Sky, Road, Car and Pedestrian in Cityscapes' colours; the rest as the checkpoint.
COLOURS = ('SKY: [70, 130, 180]\nroad: "#FF8000"\nCar: [0, 0, 142]\n'
           'pedestrian: "#DC143C"\n')


def expected_palette() -> np.ndarray:
    palette = np.array([(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128),
                        (60, 40, 222), (128, 128, 0), (192, 128, 128), (64, 64, 128),
                        (64, 0, 128), (64, 64, 0), (0, 128, 192)], np.uint8)  # CamVid's
    palette[0], palette[3] = (70, 130, 180), (255, 128, 0)
    palette[8], palette[9] = (0, 0, 142), (220, 20, 60)
    return palette


def test_outputs_take_the_files_colours(rig, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "colors.yaml").write_text(COLOURS)
    node = rig.node(class_colors="~/colors.yaml", overlay_alpha=0.4)
    palette = expected_palette()
    got = rig.listen(node, "labels", "color", "overlay")
    bgr = synthetic_frame()
    rig.send(node, image_msg(bgr, "bgr8"))
    out = rig.wait_for(got)
    labels = as_array(out["labels"])
    assert_labels_vary(labels)
    assert np.isin(labels, [0, 3, 8, 9]).any()  # some recoloured classes are in the picture
    np.testing.assert_array_equal(as_array(out["color"]), palette[labels])
    exact = 0.6 * bgr.astype(np.float64) + 0.4 * palette[labels][..., ::-1].astype(np.float64)
    diff = np.abs(as_array(out["overlay"]).astype(np.float64) - np.floor(exact + 0.5))
    half = np.isclose(exact - np.floor(exact), 0.5)  # x.5 may round either way
    assert (diff[~half] == 0).all() and (diff[half] <= 1).all()
    assert node.describe_parameter("class_colors").read_only


def test_a_class_the_model_lacks_stops_the_start(rig, tmp_path):
    from canet_ros.ros.segmentation import StartupError

    path = tmp_path / "colors.yaml"
    path.write_text("sky: [1, 2, 3]\nlane_marking: [255, 255, 255]\n")
    with pytest.raises(StartupError) as caught:
        rig.node(class_colors=str(path))
    assert str(caught.value).startswith(
        f"{path}: class colours: 'lane_marking' (line 2) is not a class of this model; its 11 "
        "classes are 'Sky', 'Building'")


def test_bad_files_end_the_process_with_one_fatal_line(tmp_path):
    files = {"not a colour": ("road: [1, 2]\n", "line 1: 'road': [1, 2] is not a colour"),
             "unknown class": ("lane: [1, 2, 3]\n", "'lane' (line 1) is not a class"),
             "twice": ("car: [1, 2, 3]\nCAR: [1, 2, 3]\n", "names the same class as 'car'")}
    cases = {"missing": (tmp_path / "missing.yaml", "no such file")}
    for case, (text, words) in files.items():
        path = tmp_path / f"{case.replace(' ', '_')}.yaml"
        path.write_text(text)
        cases[case] = (path, words)
    runs = {case: start_node("-p", "device:=cpu", "-p", f"class_colors:={path}", name=case)
            for case, (path, _) in cases.items()}
    failures = []
    for case, run in runs.items():
        code = run.wait(300)
        run.stop()
        path, words = cases[case]
        fatal = [line for _, line in run.lines if "[FATAL]" in line]
        if (code != 1 or len(fatal) != 1 or f"{path}: class colours: " not in fatal[0]
                or words not in fatal[0] or "Traceback" in run.output):
            failures.append(f"{case}: exit {code}\n{run.output}")
    assert not failures, "\n\n".join(failures)


def test_a_bad_file_is_reported_before_torch_is_imported(tmp_path):
    path = tmp_path / "colors.yaml"
    path.write_text("road: #ff0000\n")  # unquoted: YAML reads a comment, the value is null
    code = ("import sys\nfrom canet_ros.ros.node import main\n"
            "status = main(['segmentation_node', '--ros-args', '-p', 'device:=cpu', '-p', "
            f"'class_colors:={path}'])\n"
            "print('torch imported:', 'torch' in sys.modules)\nsys.exit(status)\n")
    run = RosProcess([sys.executable, "-c", code], node_env(), "no torch")
    assert run.wait(120) == 1, run.output
    assert "torch imported: False" in run.output, run.output
    fatal, = [line for _, line in run.lines if "[FATAL]" in line]
    assert "must be quoted" in fatal, run.output
