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

"""OpenVINO graphs stop before the final upsample: the same logits and labels as whole.

The references are torch (the module the graph was exported from) and ONNX Runtime
running the whole graph, never the code under test.
"""
import cv2
import numpy as np
import pytest

from canet_ros.inference import SegmentationEngine, lowres
from canet_ros.inference import upsample as up
from canet_ros.inference.lowres import SparseLogits
from canet_ros.inference.onnx_runtime import OnnxRunner, _export_bytes
from canet_ros.inference.openvino_runner import OpenVinoRunner, core, without_final_upsample

torch = pytest.importorskip("torch")
pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

SIZE = (53, 37)  # (W, H): the 1/4-stride features are 14x10, a non-integer factor


class Head(torch.nn.Module):
    """A strided conv to coarse logits, then an upsample back to the input size."""

    def __init__(self, mode="bilinear", align_corners=False):
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv2d(3, 5, 3, stride=4, padding=1)
        self.mode, self.align_corners = mode, align_corners

    def coarse(self, x):
        return self.conv(x)

    def forward(self, x):
        kwargs = {} if self.mode == "nearest" else {"align_corners": self.align_corners}
        return torch.nn.functional.interpolate(self.conv(x), size=x.shape[2:],
                                               mode=self.mode, **kwargs)


def graph(tmp_path, module, name):
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(_export_bytes(module.eval(), SIZE))
    return path


def example():
    return np.random.default_rng(4).normal(size=(1, 3, SIZE[1], SIZE[0])).astype(np.float32)


def test_the_graph_stops_before_a_bilinear_upsample_and_opencv_does_it(tmp_path):
    head = Head()
    runner = OpenVinoRunner(graph(tmp_path, head, "bilinear"), SIZE, 5, "fp32", threads=1)
    x = example()
    with torch.no_grad():
        coarse = head.coarse(torch.from_numpy(x)).numpy()
        full = head(torch.from_numpy(x)).numpy()
    assert runner.lowres
    low = runner.forward_lowres(x)
    assert low.shape == coarse.shape == (1, 5, 10, 14)
    np.testing.assert_allclose(low, coarse, rtol=1e-4, atol=1e-4)
    # OpenCV's resize must be torch's align_corners=False, borders included.
    np.testing.assert_allclose(runner.forward_numpy(x), full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode, align_corners", [("nearest", None), ("bilinear", True)])
def test_other_upsamples_stay_in_the_graph(tmp_path, mode, align_corners):
    head = Head(mode, align_corners)
    path = graph(tmp_path, head, f"{mode}_{align_corners}")
    assert without_final_upsample(core().read_model(str(path))) is None
    runner = OpenVinoRunner(path, SIZE, 5, "fp32", threads=1)
    assert not runner.lowres
    x = example()
    np.testing.assert_allclose(runner.forward_numpy(x),
                               OnnxRunner(path, SIZE, 5, threads=1).forward_numpy(x),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("low_hw, net_hw, on_lattice", [
    ((8, 12), (64, 96), True),     # the network's 8x: OpenCV's remap
    ((10, 14), (40, 56), True),    # 4x
    ((10, 14), (37, 53), False),   # a non-integer factor: the numpy path
])
def test_sparse_logits_are_the_upsampled_logits_where_asked(low_hw, net_hw, on_lattice):
    rng = np.random.default_rng(7)
    low = rng.normal(size=(5, *low_hw)).astype(np.float32)
    grid = up.CellGrid(low_hw, net_hw)
    sparse = SparseLogits(low, grid)
    assert sparse.shape == (5, *net_hw)
    assert lowres._samples(grid).on_lattice is on_lattice
    with torch.no_grad():
        whole = torch.nn.functional.interpolate(torch.from_numpy(low)[None], size=net_hw,
                                                mode="bilinear", align_corners=False)
    whole = whole[0].numpy().reshape(5, -1)
    last = net_hw[0] * net_hw[1] - 1
    # Repeats and the four corners (the clamped borders) included.
    # More points than an OpenCV image has pixels a side.
    where = np.concatenate([rng.integers(0, last + 1, 40000), [0, net_hw[1] - 1, last, last]])
    np.testing.assert_allclose(sparse.take(where), whole[:, where], rtol=1e-5, atol=1e-5)
    again = where[::7]  # a second call: nothing left over from the first
    np.testing.assert_allclose(sparse.take(again), whole[:, again], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("frame_hw", [(64, 96), (100, 150), (45, 70), (64, 200)])
def test_engine_labels_from_lowres_logits_equal_the_upsampled_argmax(seeded, frame_hw,
                                                                     cpu_loops):
    """Check labels from the 1/8 logits against the upsampled whole logits' argmax.

    Frames of the network's size, larger, smaller, and larger on one axis only.
    """
    engine = SegmentationEngine(seeded, device="cpu", precision="fp32", resolution=(96, 64))
    whole = engine._runner.forward_numpy  # ONNX Runtime, the graph run whole
    ov = OpenVinoRunner(engine_graph(engine), engine.resolution, engine.num_classes, "fp32",
                        threads=1)
    assert ov.lowres
    rng = np.random.default_rng(6)
    frames = [rng.integers(0, 256, (*frame_hw, 3), dtype=np.uint8) for _ in range(3)]
    for frame in frames:
        frame[8:40, 10:60] = rng.integers(0, 256, 3)
    expected = [upsampled_argmax(whole(engine.prepare_model_input(f))[0], frame_hw)
                for f in frames]
    # The network-size logits' confidence (test_frame_path checks it against torch).
    confidence = [engine.infer(f, confidence=True).confidence for f in frames]
    engine._runner = ov
    for frame, labels, conf in zip(frames, expected, confidence, strict=True):
        result = engine.infer(frame, color=True)
        assert np.mean(result.labels == labels) >= 0.999
        np.testing.assert_array_equal(result.color, engine.class_set.palette()[result.labels])
        # With the numba loops the confidence comes from the 1/8 logits too; without,
        # that frame takes the upsampled logits. The same labels either way.
        both = engine.infer(frame, confidence=True)
        np.testing.assert_array_equal(both.labels, result.labels)
        assert np.abs(both.confidence.astype(int) - conf).max() <= 1


def upsampled_argmax(logits, size):
    with torch.no_grad():
        whole = torch.nn.functional.interpolate(torch.from_numpy(logits)[None], size=size,
                                                mode="bilinear", align_corners=False)
    return whole[0].argmax(0).numpy()


def engine_graph(engine):
    from canet_ros.inference.onnx_runtime import cached_graph, file_digest

    return cached_graph(file_digest(engine.checkpoint_path), engine.resolution).path


@pytest.mark.parametrize("classes, dtype", [(7, np.uint8), (128, np.uint8), (300, np.uint16)])
@pytest.mark.parametrize("want_colour", [False, True])
def test_two_label_steps_equal_two_torch_upsamples_and_argmax(classes, dtype, cpu_loops,
                                                              want_colour):
    """Check any class count, and uint16 labels.

    300 classes are over the 128 channels OpenCV's binding takes: the numpy path.
    ``want_colour``: with the numba loops, uint8 labels get their colour in the same
    loops (``post.rgb``); it is the palette's, as OpenCV's colour map gives otherwise.
    """
    rng = np.random.default_rng(classes)
    # Blobby 1/8 logits: uniform regions and boundaries, as the network's.
    low = np.stack([cv2.resize(p, (16, 10), interpolation=cv2.INTER_CUBIC) for p in
                    rng.normal(0, 3, (classes, 4, 5)).astype(np.float32)])
    net_hw, frame_hw = (80, 128), (150, 241)
    palette = rng.integers(0, 256, (classes, 3), dtype=np.uint8)
    post = lowres.frame_post_from_lowres(low, up.CellGrid(low.shape[1:], net_hw),
                                         up.CellGrid(net_hw, frame_hw), np.dtype(dtype),
                                         up.pack_palette(palette), want_colour=want_colour)
    with torch.no_grad():
        net = torch.nn.functional.interpolate(torch.from_numpy(low)[None], size=net_hw,
                                              mode="bilinear", align_corners=False)
        whole = torch.nn.functional.interpolate(net, size=frame_hw, mode="bilinear",
                                                align_corners=False)[0]
    top2 = whole.topk(2, dim=0).values
    decided = (top2[0] - top2[1] > 1e-4).numpy()  # float rounding may flip near-ties only
    assert decided.mean() > 0.99
    assert post.labels.dtype == dtype and post.labels.shape == frame_hw
    assert not ((post.labels != whole.argmax(0).numpy()) & decided).any()
    np.testing.assert_array_equal(post.colour("bgr"), palette[post.labels][..., ::-1])
    fused = want_colour and cpu_loops == "numba" and dtype == np.uint8
    assert (post.rgb is not None) is fused
    np.testing.assert_array_equal(post.colour("rgb"), palette[post.labels])
