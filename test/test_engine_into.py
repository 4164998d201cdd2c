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
from canet_ros.inference import EngineError, SegmentationEngine, cpu_runners, results

OUTPUTS = ("labels", "color", "overlay", "confidence")
# The CPU paths: ONNX Runtime's full-size logits, OpenVINO's 1/8 logits (``lowres``; what
# bf16 and int8 run on), the latter at the network's size and with flip TTA, and torch.
PATHS = {"onnxruntime": {}, "openvino": {}, "openvino-network": {"output_size": "network"},
         "openvino-tta": {"tta": True}, "torch": {"runtime": "torch"}}


def layout(engine, frame_hw):
    height, width = engine.out_hw(frame_hw)
    return {"labels": ((height, width), engine.label_dtype),
            "color": ((height, width, 3), np.uint8),
            "overlay": ((height, width, 3), np.uint8),
            "confidence": ((height, width), np.uint8)}


@pytest.fixture(scope="module")
def engine(seeded):
    return SegmentationEngine(seeded, device="cpu", precision="auto", resolution=(96, 64))


@pytest.fixture(scope="module", params=sorted(PATHS))
def path_engine(request, seeded):
    runtime = request.param.split("-")[0]
    with pytest.MonkeyPatch.context() as patch:
        if runtime == "openvino":  # hidden ONNX Runtime: OpenVINO runs fp32 too
            if not cpu_runners.openvino_available():
                pytest.skip("OpenVINO is not installed")
            patch.setattr(cpu_runners, "onnxruntime_available", lambda: False)
        engine = SegmentationEngine(seeded, device="cpu", resolution=(96, 64),
                                    **PATHS[request.param])
    if engine.runtime != runtime:
        pytest.skip(f"{runtime} is not installed")
    assert getattr(engine._runner, "lowres", False) == (runtime == "openvino")  # the path meant
    return engine


def blocky_frame(frame_hw, seed):
    """Return a frame of 8x8 blocks: labels vary, with mixed cells at their edges."""
    blocks = np.random.default_rng(seed).integers(0, 256, (-(-frame_hw[0] // 8),
                                                           -(-frame_hw[1] // 8), 3), np.uint8)
    return np.ascontiguousarray(blocks.repeat(8, 0).repeat(8, 1)[:frame_hw[0], :frame_hw[1]])


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


@pytest.mark.parametrize("asked", [(), ("overlay",), ("overlay", "confidence"), ("color",),
                                   ("confidence",), ("color", "overlay", "confidence")],
                         ids=lambda asked: "+".join(asked) or "labels")
@pytest.mark.parametrize("frame_hw", [(64, 96), (100, 150)])
def test_arrays_of_outputs_not_asked_for_keep_the_callers_values(path_engine, cpu_loops,
                                                                 frame_hw, asked):
    """An overlay alone makes a colour: it must not land in a colour array handed in."""
    engine, frame = path_engine, blocky_frame(frame_hw, 5)
    flags = {name: True for name in asked}
    expected = engine.infer(frame, "bgr", **flags)
    # What the caller holds there: another frame's outputs (a colour it still publishes).
    held = engine.infer(blocky_frame(frame_hw, 6), "bgr", color=True, overlay=True,
                        confidence=True)
    into = {name: getattr(held, name).copy() for name in OUTPUTS}
    result = engine.infer(frame, "bgr", into=into, **flags)
    for name in OUTPUTS:
        if name == "labels" or name in asked:
            assert getattr(result, name) is into[name]
            np.testing.assert_array_equal(into[name], getattr(expected, name), err_msg=name)
        else:
            assert getattr(result, name) is None
            np.testing.assert_array_equal(into[name], getattr(held, name), err_msg=name)


def odd_layouts(shape, dtype):
    """Arrays of ``shape`` and ``dtype`` that are not C-contiguous, each with what holds it."""
    wide = np.full((shape[0], 2 * shape[1], *shape[2:]), 7, dtype)
    layouts = {"fortran": np.asfortranarray(np.full(shape, 7, dtype)), "columns": wide[:, ::2]}
    if len(shape) == 3:
        layouts["channels reversed"] = np.full(shape, 7, dtype)[:, :, ::-1]
    return layouts, wide


@pytest.mark.parametrize("name", OUTPUTS)
@pytest.mark.parametrize("frame_hw", [(64, 96), (100, 150)])
def test_arrays_of_any_layout_take_the_outputs(path_engine, cpu_loops, frame_hw, name):
    """Right shape and dtype but not contiguous: the output is copied in, never an error."""
    engine, frame = path_engine, blocky_frame(frame_hw, 7)
    flags = {"color": True, "overlay": True, "confidence": True}
    expected = engine.infer(frame, "bgr", **flags)
    layouts, wide = odd_layouts(*results.output_layout(engine.out_hw(frame_hw),
                                                       engine.label_dtype)[name])
    for layout_name, array in layouts.items():
        result = engine.infer(frame, "bgr", into={name: array}, **flags)
        assert getattr(result, name) is array, layout_name
        for output in OUTPUTS:  # the others as without ``into``
            np.testing.assert_array_equal(getattr(result, output), getattr(expected, output),
                                          err_msg=f"{layout_name}: {output}")
    assert (wide[:, 1::2] == 7).all()  # the columns between the slice's: untouched


@pytest.mark.parametrize("name", OUTPUTS)
def test_a_read_only_array_is_refused(path_engine, cpu_loops, name):
    frame = blocky_frame((100, 150), 8)
    shape, dtype = results.output_layout(path_engine.out_hw((100, 150)),
                                         path_engine.label_dtype)[name]
    array = np.frombuffer(bytes(int(np.prod(shape)) * dtype.itemsize), dtype).reshape(shape)
    flags = {"color": True, "overlay": True, "confidence": True}
    with pytest.raises(EngineError, match=rf"read-only array\(s\) for \['{name}'\]"):
        path_engine.infer(frame, into={name: array}, **flags)
    if name != "labels":  # not asked for: ignored, as any array for such an output
        path_engine.infer(frame, into={name: array})
