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

"""``engine.infer(into=...)``: outputs written into the caller's arrays (messages' buffers).

The expectation is the same engine's ``infer`` without ``into``; what is checked is where
the outputs land and that the CPU path writes them there rather than copying them in.
"""
from types import SimpleNamespace

import numpy as np
import pytest

from canet_ros.image_codec import image_buffer
from canet_ros.inference import EngineError, SegmentationEngine, results

OUTPUTS = ("labels", "color", "overlay", "confidence")


def layout(engine, frame_hw):
    height, width = engine.out_hw(frame_hw)
    return {"labels": ((height, width), engine.label_dtype),
            "color": ((height, width, 3), np.uint8),
            "overlay": ((height, width, 3), np.uint8),
            "confidence": ((height, width), np.uint8)}


@pytest.fixture(scope="module")
def engine(seeded):
    return SegmentationEngine(seeded, device="cpu", precision="auto", resolution=(96, 64))


@pytest.fixture
def copies(monkeypatch):
    """Record every array ``results.place`` copies into."""
    seen = []
    real = np.copyto

    def spy(dst, src, *args, **kwargs):
        seen.append(dst)
        return real(dst, src, *args, **kwargs)

    monkeypatch.setattr(results.np, "copyto", spy)
    return seen


@pytest.mark.parametrize("frame_hw", [(64, 96), (100, 150)])
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_outputs_land_in_the_arrays_given(engine, cpu_loops, copies, frame_hw, order):
    frame = np.random.default_rng(sum(frame_hw)).integers(0, 256, (*frame_hw, 3), np.uint8)
    flags = {"color": True, "overlay": True, "confidence": True}
    expected = engine.infer(frame, order, **flags)
    msgs = {name: SimpleNamespace(data=None) for name in OUTPUTS}
    into = {name: image_buffer(msgs[name], *layout(engine, frame_hw)[name])
            for name in OUTPUTS}
    result = engine.infer(frame, order, into=into, **flags)
    for name in OUTPUTS:
        assert getattr(result, name) is into[name]
        np.testing.assert_array_equal(into[name], getattr(expected, name))
        assert np.frombuffer(msgs[name].data, np.uint8).tobytes() == into[name].tobytes()
    copied = {name for name in OUTPUTS for dst in copies if dst is into[name]}
    # The colour map and the blend write in place on every CPU path; with the numba
    # loops and a 1/8 runner (OpenVINO) the labels and confidence do too.
    assert "color" not in copied and "overlay" not in copied
    if cpu_loops == "numba" and getattr(engine._runner, "lowres", False):
        assert copied == set()


def test_labels_alone_and_outputs_not_asked_for(engine, cpu_loops):
    frame = np.zeros((64, 96, 3), np.uint8)
    into = {name: np.full(shape, 9, dtype) for name, (shape, dtype) in
            layout(engine, (64, 96)).items()}
    result = engine.infer(frame, into=into)
    assert result.labels is into["labels"] and result.color is None
    np.testing.assert_array_equal(result.labels, engine.infer(frame).labels)
    assert (into["color"] == 9).all() and (into["confidence"] == 9).all()  # untouched


@pytest.mark.parametrize("name, shape, dtype, message", [
    ("color", (64, 96), np.uint8, r"into\['color'\] is \(64, 96\) uint8; this frame's color "
                                  r"are \(64, 96, 3\) uint8"),
    ("labels", (64, 96), np.float32, "float32"),
    ("overlay", (32, 48, 3), np.uint8, r"\(32, 48, 3\)"),
])
def test_an_array_of_another_shape_or_dtype_is_refused(engine, name, shape, dtype, message):
    frame = np.zeros((64, 96, 3), np.uint8)
    with pytest.raises(EngineError, match=message):
        engine.infer(frame, color=True, overlay=True, into={name: np.zeros(shape, dtype)})


def test_an_unknown_output_name_is_refused(engine):
    with pytest.raises(EngineError, match="unknown output.*'colour'"):
        engine.infer(np.zeros((64, 96, 3), np.uint8), into={"colour": np.zeros((64, 96, 3))})


def test_a_cuda_handles_result_is_copied_into_the_arrays_when_collected():
    """The CUDA path's handles (``results.Placed``): outputs arrive on the host, copied in."""
    made = results.SegmentationResult(np.arange(6, dtype=np.uint8).reshape(2, 3),
                                      confidence=np.full((2, 3), 200, np.uint8))

    class Handle:
        collected = 0

        def done(self):
            return True

        def result(self):
            Handle.collected += 1
            return made

    into = {"labels": np.zeros((2, 3), np.uint8), "confidence": np.zeros((2, 3), np.uint8),
            "color": np.zeros((2, 3, 3), np.uint8)}  # not made: left alone
    placed = results.Placed(Handle(), into)
    assert placed.done() and Handle.collected == 0  # nothing copied before collection
    result = placed.result()
    assert result.labels is into["labels"] and result.confidence is into["confidence"]
    np.testing.assert_array_equal(into["labels"], np.arange(6).reshape(2, 3))
    assert (into["confidence"] == 200).all() and not into["color"].any()
    assert result.color is None


def test_infer_many_yields_each_frames_own_outputs_in_the_arrays(engine, cpu_loops):
    """The next frame is made only after a result is yielded, or it would overwrite it."""
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (64, 96, 3), np.uint8) for _ in range(3)]
    expected = [engine.infer(f, color=True) for f in frames]
    assert not np.array_equal(expected[0].labels, expected[1].labels)
    into = {name: np.zeros(*layout(engine, (64, 96))[name]) for name in ("labels", "color")}
    for want, got in zip(expected, engine.infer_many(frames, color=True, into=into),
                         strict=True):
        assert got.labels is into["labels"] and got.color is into["color"]
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_array_equal(got.color, want.color)
