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


"""The node says which precision and runtime run (``auto`` resolved), not what was asked."""
import os

import pytest
from ros_helpers import Rig

from canet_ros.inference import cpu_features, cpu_runners, kernels

pytestmark = pytest.mark.usefixtures("one_torch_thread")
pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def forget_auto_engines():
    yield
    # Rig shares engines by their arguments; an auto engine depends on the (faked) CPU too.
    for key in [k for k in Rig._engines if ("precision", "auto") in k[1]]:
        del Rig._engines[key]


def auto_here(seeded):
    """Return what auto takes on this machine, from the documented order.

    That is once int8's graph is made (made here first where auto would take it).
    """
    from canet_ros.inference import SegmentationEngine

    native = cpu_features.cpu_precisions()
    precision = next(p for p in cpu_runners.AUTO_ORDER if p == "fp32" or (
        p in native and cpu_runners.runtime_for(p) == "openvino"))
    if precision == "int8":
        SegmentationEngine(str(seeded), device="cpu", precision="int8", warmup=False)
    return precision


def check_reports(node, precision, runtime):
    assert node.engine.precision_label == f"{precision} on {runtime}"
    # The numba loops run wherever numba imports and CANET_ROS_NUMBA is not 0 (a numba
    # that is found but fails to import, e.g. without pkg_resources, does not count).
    compiled = kernels.installed() and os.environ.get("CANET_ROS_NUMBA", "1") != "0"
    loops = ", numba loops" if compiled else ""
    assert f"({precision} on {runtime}{loops}); input " in node._ready_message()
    from canet_ros.ros.node_report import static_key_values

    values = static_key_values(node.engine, "digest", "topic")  # what diagnostics carry
    assert (values["precision"], values["runtime"]) == (precision, runtime)
    assert values["cpu_loops"] == ("numba" if compiled else "opencv")


def test_auto_is_reported_as_what_it_chose(rig, seeded):
    precision = auto_here(seeded)
    check_reports(rig.node(precision="auto"), precision, cpu_runners.runtime_for(precision))


def test_auto_on_a_cpu_without_bf16_or_int8_is_fp32(rig, monkeypatch):
    monkeypatch.setattr(cpu_features, "cpu_flags", lambda: frozenset({"sse4_2", "avx2"}))
    check_reports(rig.node(precision="auto"), "fp32", "onnxruntime")


def test_a_named_precision_is_reported_with_its_runtime(rig):
    check_reports(rig.node(precision="fp32"), "fp32", "onnxruntime")
