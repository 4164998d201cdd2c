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

"""SegmentationEngine on the CPU: equality with a plain-torch reference, outputs, errors.

Labels are compared "up to ties": only where the reference's top-2 logit gap exceeds
EPS, since float rounding (ONNX Runtime vs torch, OpenCV vs torch resize) may flip
near-ties. The seeded test model has its classifier scaled up so that such pixels are
rare, and each comparison also asserts that it covers nearly all pixels.
"""
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID, generic_class_set
from canet_ros.inference import EngineError, SegmentationEngine
from canet_ros.inference import onnx_runtime as ortmod
from canet_ros.inference import postprocess as post
from canet_ros.models import build_canet

EPS = 1e-3
MEAN, STD = (0.40, 0.45, 0.50), (0.25, 0.20, 0.30)  # asymmetric: catches channel-order slips
RES = (128, 96)
CAMVID_ROOT = Path(os.environ.get("CANET_CAMVID_ROOT")
                   or Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid")


def seeded_model(num_classes: int = 11) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_canet("mobilenetv2", num_classes).eval()
    with torch.no_grad():
        # Untrained logits are tiny and nearly tie everywhere; scaling the classifier
        # gives gaps of order 1, so "equal up to ties" compares almost every pixel.
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
        model.classifier.bias.zero_()
    return model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = seeded_model()
    meta = build_metadata("mobilenetv2", CAMVID, mean=MEAN, std=STD, input_size=RES)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "seeded.pt", model, meta), model


@pytest.fixture(scope="module")
def make_engine(checkpoint):
    cache = {}

    def make(**kwargs):
        key = tuple(sorted(kwargs.items()))
        if key not in cache:
            cache[key] = SegmentationEngine(checkpoint[0], device="cpu", **kwargs)
        return cache[key]
    return make


@pytest.fixture(scope="module")
def camvid_frames():
    folder = CAMVID_ROOT / "val"
    files = sorted(folder.glob("*.png"))[:2] if folder.is_dir() else []
    if not files:
        reason = f"no CamVid frames under {folder} (set CANET_CAMVID_ROOT to the camvid folder)"
        print(reason)
        pytest.skip(reason)
    return [np.ascontiguousarray(cv2.imread(str(f), cv2.IMREAD_COLOR)[:, :, ::-1]) for f in files]


def reference_logits(model, frame_rgb, resolution, out_hw):
    """Compute the engine's semantics in plain torch: resize, normalise, forward, upsample."""
    width, height = resolution
    x = torch.from_numpy(frame_rgb).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(x)
    return F.interpolate(logits, size=out_hw, mode="bilinear", align_corners=False)[0]


def assert_labels_match(labels, logits):
    top2 = logits.topk(2, dim=0).values
    decided = (top2[0] - top2[1] > EPS).numpy()
    assert decided.mean() > 0.97, "too many near-ties for a meaningful comparison"
    mismatch = (labels != logits.argmax(0).numpy()) & decided
    assert not mismatch.any(), f"{int(mismatch.sum())} decided pixels differ"


@pytest.mark.parametrize("runtime, output_size, resolution", [
    ("torch", "input", RES), ("onnxruntime", "input", RES), ("onnxruntime", "network", RES),
    ("onnxruntime", "input", (97, 131)), ("torch", "network", (97, 131))])
def test_labels_equal_plain_torch_reference(make_engine, checkpoint, camvid_frames, runtime,
                                            output_size, resolution):
    engine = make_engine(runtime=runtime, output_size=output_size, resolution=resolution)
    assert engine.runtime == runtime
    for frame in camvid_frames:
        res = engine.infer(frame, confidence=True)
        out_hw = frame.shape[:2] if output_size == "input" else resolution[::-1]
        logits = reference_logits(checkpoint[1], frame, resolution, out_hw)
        assert res.labels.shape == out_hw and res.labels.dtype == np.uint8
        assert_labels_match(res.labels, logits)
        expected_conf = np.rint(255 * logits.softmax(0).amax(0).numpy())
        assert np.abs(res.confidence.astype(int) - expected_conf).max() <= 1


@pytest.mark.parametrize("numba", ["1", "0"])  # the compiled loops, and numpy/OpenCV's
def test_rgb_and_bgr_input_agree(make_engine, camvid_frames, numba, monkeypatch):
    monkeypatch.setenv("CANET_ROS_NUMBA", numba)
    engine = make_engine(runtime="onnxruntime", output_size="input", resolution=RES)
    rgb = camvid_frames[0]
    a = engine.infer(rgb, "rgb", color=True, overlay=True)
    b = engine.infer(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr", color=True, overlay=True)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.color, b.color)  # the colour mask is always RGB
    np.testing.assert_array_equal(b.overlay, a.overlay[:, :, ::-1])  # overlay: input's order


def test_shapes_dtypes_and_unrequested_outputs(make_engine):
    frame = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    res = make_engine(runtime="torch", output_size="input", resolution=RES).infer(frame)
    assert res.labels.shape == (50, 70) and res.labels.dtype == np.uint8
    assert res.color is None and res.overlay is None and res.confidence is None
    res = make_engine(runtime="onnxruntime", output_size="network", resolution=RES).infer(
        frame, color=True, overlay=True, confidence=True)
    assert res.labels.shape == (96, 128)
    assert res.color.shape == res.overlay.shape == (96, 128, 3)
    assert res.confidence.shape == (96, 128) and res.confidence.dtype == np.uint8
    assert res.color.dtype == res.overlay.dtype == np.uint8


def test_async_and_many_equal_sync(make_engine, camvid_frames):
    engine = make_engine(runtime="onnxruntime", output_size="input", resolution=RES)
    sync = [engine.infer(f).labels for f in camvid_frames]
    handles = [engine.infer_async(f) for f in camvid_frames]
    assert all(h.done() for h in handles)
    for expected, handle, streamed in zip(sync, handles, engine.infer_many(camvid_frames),
                                          strict=True):
        np.testing.assert_array_equal(handle.result().labels, expected)
        np.testing.assert_array_equal(streamed.labels, expected)


@pytest.mark.parametrize("resolution", [RES, (97, 131)])
@pytest.mark.parametrize("output_size", ["input", "network"])
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_device_side_compute_matches_cpu_path(make_engine, checkpoint, camvid_frames,
                                              output_size, order, resolution):
    """The CUDA path's pre/post-processing (plain torch ops), run here on CPU tensors.

    Both paths must give the reference's label on every decided pixel (an align_corners
    slip in either moves about 2 % of them), the same colours, and overlays and
    confidences within one grey level of each other.
    """
    from canet_ros.inference.results import Request

    engine = make_engine(runtime="torch", output_size=output_size, resolution=resolution)
    device_path = engine._make_device_path(engine._runner)
    rgb = camvid_frames[1]
    frame = rgb if order == "rgb" else np.ascontiguousarray(rgb[..., ::-1])
    request = Request(order, color=True, overlay=True, confidence=True, alpha=0.3)
    with torch.inference_mode():
        outs = device_path.compute(torch.from_numpy(frame), request)
    res = engine.infer(frame, order, color=True, overlay=True, confidence=True, alpha=0.3)
    out_hw = rgb.shape[:2] if output_size == "input" else resolution[::-1]
    logits = reference_logits(checkpoint[1], rgb, resolution, out_hw)
    labels = outs["labels"].numpy()
    assert labels.shape == res.labels.shape == out_hw
    assert_labels_match(labels, logits)
    assert_labels_match(res.labels, logits)
    same = labels == res.labels
    assert same.mean() > 0.999
    np.testing.assert_array_equal(outs["color"].numpy()[same], res.color[same])
    np.testing.assert_array_equal(res.color, CAMVID.palette()[res.labels])
    assert np.abs(outs["overlay"].numpy().astype(int) - res.overlay)[same].max() <= 1
    assert np.abs(outs["confidence"].numpy().astype(int) - res.confidence).max() <= 1


def forced_engine(class_id: int, classes=CAMVID, **kwargs) -> SegmentationEngine:
    """Build an untrained engine whose classifier bias makes every pixel ``class_id``."""
    engine = SegmentationEngine(None, backbone="mobilenetv2", class_set=classes, device="cpu",
                                runtime="torch", resolution=(64, 64), warmup=False, **kwargs)
    with torch.no_grad():
        engine.model.classifier.weight.zero_()
        engine.model.classifier.bias.zero_()
        engine.model.classifier.bias[class_id] = 10.0
    return engine


def expected_blend(frame, color, alpha):
    """round((1-a)*frame + a*color); exact .5 may round either way (documented)."""
    exact = (1 - alpha) * frame.astype(np.float64) + alpha * color.astype(np.float64)
    return np.floor(exact + 0.5), np.isclose(exact - np.floor(exact), 0.5)


@pytest.mark.parametrize("numba", ["1", "0"])  # the compiled loops, and numpy/OpenCV's
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_colour_mask_and_overlay_by_hand(order, numba, monkeypatch):
    monkeypatch.setenv("CANET_ROS_NUMBA", numba)
    engine = forced_engine(8, overlay_alpha=0.25)  # 8 = Car, (64, 0, 128)
    frame = (np.arange(36 * 40 * 3) % 251).astype(np.uint8).reshape(36, 40, 3)
    res = engine.infer(frame, order, color=True, overlay=True)
    assert (res.labels == 8).all()
    assert (res.color == np.array([64, 0, 128], np.uint8)).all()
    tint = np.array([64, 0, 128] if order == "rgb" else [128, 0, 64], np.float64)
    expected, half = expected_blend(frame, np.broadcast_to(tint, frame.shape), 0.25)
    diff = np.abs(res.overlay.astype(int) - expected)
    assert (diff[~half] == 0).all() and (diff[half] <= 1).all()
    over = engine.infer(frame, order, overlay=True, alpha=1.0).overlay  # per-call alpha
    assert (over == tint.astype(np.uint8)).all()


def test_overlay_at_network_size_blends_the_resized_frame():
    engine = forced_engine(3, output_size="network", overlay_alpha=0.5)
    frame = np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    res = engine.infer(frame, overlay=True)
    # The frame resized in float (noise: a wrong resize is off by many grey levels), then
    # rounded to bytes and blended: two roundings, so within 1 of the float blend.
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    base = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)[0]
    exact = 0.5 * base.permute(1, 2, 0).numpy() + 0.5 * np.asarray(CAMVID.colors[3])
    diff = np.abs(res.overlay.astype(float) - exact)
    assert res.overlay.shape == (64, 64, 3) and diff.max() <= 1.0 and diff.mean() < 0.4


def test_uint16_labels_past_255_classes():
    classes = generic_class_set(300)
    engine = forced_engine(299, classes=classes)
    res = engine.infer(np.zeros((20, 30, 3), np.uint8), color=True)
    assert res.labels.dtype == np.uint16 and (res.labels == 299).all()
    assert (res.color == np.array(classes.colors[299], np.uint8)).all()
    assert engine.num_classes == 300


def test_postprocess_functions_by_hand():
    logits = np.zeros((3, 2, 3), np.float32)
    logits[1, 0, 0] = logits[2, 0, 0] = 5.0  # tie: the first maximum wins, as in torch
    logits[2, 1, 2] = 1.0
    labels, conf = post.labels_cpu(logits, (2, 3), np.dtype(np.uint8), confidence=True)
    np.testing.assert_array_equal(labels, [[1, 0, 0], [0, 0, 2]])
    expected = np.rint(255 * torch.from_numpy(logits).softmax(0).amax(0).numpy())
    np.testing.assert_array_equal(conf, expected)
    palette = np.array([[0, 0, 0], [255, 0, 0], [10, 20, 30]], np.uint8)
    color = post.colorize_cpu(labels, palette)
    np.testing.assert_array_equal(color[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(color[1, 2], [10, 20, 30])
    frame = np.full((2, 3, 3), 100, np.uint8)
    np.testing.assert_array_equal(post.blend_cpu(frame, color, 0.4)[0, 0], [162, 60, 60])


def test_upsampled_argmax_matches_torch():
    logits = torch.randn(1, 5, 7, 9, generator=torch.Generator().manual_seed(3))
    labels, _ = post.labels_cpu(logits[0].numpy(), (20, 13), np.dtype(np.uint16))
    ref = F.interpolate(logits, size=(20, 13), mode="bilinear", align_corners=False)[0]
    assert labels.dtype == np.uint16
    assert_labels_match(labels, ref)


def test_device_auto_logs_its_choice(checkpoint, caplog):
    with caplog.at_level(logging.INFO, logger="canet_ros.inference"):
        engine = SegmentationEngine(checkpoint[0], runtime="torch", warmup=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert engine.device.type == expected
    assert any("device=auto" in r.getMessage() for r in caplog.records)


def test_onnx_export_is_cached(checkpoint, onnx_cache, monkeypatch):
    SegmentationEngine(checkpoint[0], device="cpu", runtime="onnxruntime", resolution=RES,
                       warmup=False)
    files = list((onnx_cache / "onnx").glob("*.onnx"))
    assert files

    def no_export(*args, **kwargs):
        raise AssertionError("exported again despite the cache")
    monkeypatch.setattr(ortmod, "_export_bytes", no_export)
    engine = SegmentationEngine(checkpoint[0], device="cpu", runtime="onnxruntime",
                                resolution=RES, warmup=False)
    assert engine.runtime == "onnxruntime"
    assert sorted((onnx_cache / "onnx").glob("*.onnx")) == sorted(files)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_an_error(checkpoint):
    with pytest.raises(EngineError, match="CUDA is not available"):
        SegmentationEngine(checkpoint[0], device="cuda")
    with pytest.raises(EngineError, match="CUDA is not available"):
        SegmentationEngine(checkpoint[0], device="cuda:1")


@pytest.mark.parametrize("kwargs, match", [
    ({"precision": "fp16", "device": "cpu"}, "fp16"),
    ({"precision": "int4"}, "precision"),
    ({"device": "tpu"}, "device"),
    ({"runtime": "tensorrt"}, "runtime"),
    ({"output_size": "half"}, "output_size"),
    ({"overlay_alpha": 1.5}, "alpha"),
    ({"backbone": "resnet18"}, "resnet18"),
])
def test_bad_arguments(checkpoint, kwargs, match):
    with pytest.raises(EngineError, match=match):
        SegmentationEngine(checkpoint[0], **{"device": "cpu", "warmup": False, **kwargs})


@pytest.mark.parametrize("resolution", ["abc", "0x10", "128x", "-5x5", "16x16", "128x96x3",
                                        (0, 96), (128,), (128.0, 96), "640*480"])
def test_bad_resolutions(checkpoint, resolution):
    with pytest.raises(EngineError, match="resolution"):
        SegmentationEngine(checkpoint[0], device="cpu", resolution=resolution, warmup=False)


def test_resolution_string_and_checkpoint_default(make_engine, checkpoint):
    # Without resolution= the checkpoint's input_size is used.
    assert make_engine(runtime="torch", output_size="input", resolution=None).resolution == RES
    engine = SegmentationEngine(checkpoint[0], device="cpu", resolution=" 64X48 ",
                                runtime="torch", warmup=False)
    assert engine.resolution == (64, 48) and engine.checkpoint_path == checkpoint[0]


def test_model_source_errors(tmp_path):
    with pytest.raises(EngineError, match="backbone"):
        SegmentationEngine(None, device="cpu")
    with pytest.raises(EngineError, match="no such checkpoint"):
        SegmentationEngine(tmp_path / "missing.pt", device="cpu")
    with pytest.raises(EngineError, match="class set"):
        SegmentationEngine(None, backbone="mobilenetv2", class_set="nope", device="cpu")


def test_bad_frames_and_orders(make_engine):
    engine = make_engine(runtime="torch", output_size="input", resolution=RES)
    for frame in (np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                  np.zeros((10, 10, 4), np.uint8), np.zeros((0, 10, 3), np.uint8), [[1, 2, 3]]):
        with pytest.raises(EngineError, match="frame"):
            engine.infer(frame)
    with pytest.raises(EngineError, match="order"):
        engine.infer(np.zeros((10, 10, 3), np.uint8), "rgba")
    with pytest.raises(EngineError, match="alpha"):
        engine.infer(np.zeros((10, 10, 3), np.uint8), overlay=True, alpha=-0.1)
    with pytest.raises(EngineError, match="alpha"):
        engine.overlay_alpha = 2


def test_inference_code_does_not_import_ros():
    import ast

    import canet_ros
    root = Path(canet_ros.__file__).parent
    files = [*(root / "inference").glob("*.py"), *(root / "benchmark").glob("*.py"),
             root / "cli" / "benchmark.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] in ("rclpy", "sensor_msgs") for n in names), path


def test_exact_fp32_switch_is_shared_by_overlapping_engines():
    # Two fp32 engines' forwards overlapping in time (two camera threads): TF32 stays off
    # until the last one leaves, then the user's own setting comes back.
    from canet_ros.inference.runners import _exact_fp32

    flags = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = tuple(f.allow_tf32 for f in flags)
    try:
        for f in flags:
            f.allow_tf32 = True
        first, second = _exact_fp32(), _exact_fp32()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert [f.allow_tf32 for f in flags] == [False, False]
        second.__exit__(None, None, None)
        assert [f.allow_tf32 for f in flags] == [True, True]
    finally:
        for f, v in zip(flags, saved, strict=True):
            f.allow_tf32 = v
