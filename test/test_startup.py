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

"""Start-up: a CPU engine from a cached ONNX export loads no torch; ``--startup`` figures.

Times are never asserted; what is checked is what decides them (which modules a process
loads) and that the cached engine gives the same results as the one that made the cache.
"""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from canet_ros.benchmark import startup
from canet_ros.checkpoint import build_metadata, save_checkpoint
from canet_ros.classes import CAMVID
from canet_ros.cli.benchmark import subcommand_names
from canet_ros.inference import EngineError, SegmentationEngine
from canet_ros.inference.results import no_gpu_present
from canet_ros.models import build_canet

ROOT = Path(__file__).resolve().parents[1]
RES = (96, 64)
CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from canet_ros.inference import SegmentationEngine
    engine = SegmentationEngine(sys.argv[1], device=sys.argv[2], resolution=None)
    frame = np.load(sys.argv[3])
    res = engine.infer(frame, "bgr", color=True, overlay=True, confidence=True)
    np.savez(sys.argv[4], **{k: getattr(res, k) for k in ("labels", "color", "overlay",
                                                        "confidence")})
    print(json.dumps({"torch": "torch" in sys.modules, "runtime": engine.runtime,
                      "resolution": list(engine.resolution), "backbone": engine.backbone,
                      "classes": engine.class_set.names}))
""")


def seeded_checkpoint(path, seed):
    torch.manual_seed(seed)
    model = build_canet("mobilenetv2", CAMVID.num_classes).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.classifier.weight, std=20.0)
    meta = build_metadata("mobilenetv2", CAMVID, mean=(0.4, 0.45, 0.5), std=(0.25, 0.2, 0.3),
                          input_size=RES)
    return save_checkpoint(path, model, meta)


def child(checkpoint, device, frame_path, out_path):
    proc = subprocess.run([sys.executable, "-c", CHILD, str(checkpoint), device,
                           str(frame_path), str(out_path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_engine_loads_no_torch():
    code = ("import sys, canet_ros.inference; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'onnxruntime'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    """Return a checkpoint whose export this process caches, a frame and this process's results."""
    folder = tmp_path_factory.mktemp("startup")
    path = seeded_checkpoint(folder / "seeded.pt", seed=3)
    frame = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    frame[40:110, 60:150] = (30, 160, 90)  # some structure for the labels to follow
    np.save(folder / "frame.npy", frame)
    engine = SegmentationEngine(path, device="cpu")  # torch path: exports and caches
    assert engine.runtime == "onnxruntime" and engine.resolution == RES
    return path, folder, engine.infer(frame, "bgr", color=True, overlay=True, confidence=True)


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_cached_export_builds_without_torch_and_gives_the_same_results(cached, device):
    if device == "auto" and not no_gpu_present():
        pytest.skip("this machine has a GPU device node: auto asks torch")
    path, folder, expected = cached
    report = child(path, device, folder / "frame.npy", folder / f"out_{device}.npz")
    assert report == {"torch": False, "runtime": "onnxruntime", "resolution": list(RES),
                      "backbone": "mobilenetv2", "classes": list(CAMVID.names)}
    got = np.load(folder / f"out_{device}.npz")
    for name in ("labels", "color", "overlay", "confidence"):
        np.testing.assert_array_equal(got[name], getattr(expected, name), err_msg=name)


BENCH_CHILD = textwrap.dedent("""
    import json, sys
    from canet_ros.bag.distributed import RankInfo
    from canet_ros.benchmark.checkpoint_meta import checkpoint_facts
    from canet_ros.checkpoint import CheckpointError
    assert RankInfo.from_env().world_size == 1  # segment-bag asks this on every run
    try:
        checkpoint_facts(sys.argv[1], (96, 64))  # run_benchmark's check before the engine
        refused = None
    except CheckpointError as exc:
        refused = str(exc)
    print(json.dumps({"torch": "torch" in sys.modules, "refused": refused}))
""")


def _bench_check(path):
    proc = subprocess.run([sys.executable, "-c", BENCH_CHILD, str(path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_cached_checkpoint_is_checked_and_ranked_without_torch(cached, tmp_path):
    # torch is ~480 MB of a process: segment-bag's rank lookup and the benchmark's file
    # check (counted in its peak_host_mb) must not load it when the engine needs none.
    path, _, _ = cached
    assert _bench_check(path) == {"torch": False, "refused": None}
    # A damaged file (not in the cache) is still refused, naming it, before any work.
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[:5000])
    report = _bench_check(broken)
    assert "broken.pt" in report["refused"]


def test_a_changed_checkpoint_is_not_served_from_the_cache(cached, tmp_path):
    path, folder, expected = cached
    other = seeded_checkpoint(tmp_path / "seeded.pt", seed=4)  # same name, other weights
    report = child(other, "cpu", folder / "frame.npy", tmp_path / "out.npz")
    assert report["torch"] is True  # no cache entry for these bytes: exported anew
    assert (np.load(tmp_path / "out.npz")["labels"] != expected.labels).mean() > 0.05


def test_cached_engine_checks_the_backbone_and_loads_the_model_on_demand(cached):
    path, _, _ = cached
    with pytest.raises(EngineError, match="resnet18"):
        SegmentationEngine(path, device="cpu", backbone="resnet18", warmup=False)
    engine = SegmentationEngine(path, device="cpu", warmup=False)
    assert engine._model is None  # built from the cache
    assert sum(p.numel() for p in engine.model.parameters()) > 1e6  # loaded when asked for
    assert engine.device == torch.device("cpu")


def test_a_damaged_cache_entry_is_exported_again(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))
    path = seeded_checkpoint(tmp_path / "seeded.pt", seed=5)
    frame = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    expected = SegmentationEngine(path, device="cpu").infer(frame).labels
    graphs = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(graphs) == 1
    graphs[0].write_bytes(b"not an onnx graph")
    engine = SegmentationEngine(path, device="cpu")  # warns, exports again, rewrites
    assert engine.runtime == "onnxruntime" and "unusable" in caplog.text
    np.testing.assert_array_equal(engine.infer(frame).labels, expected)
    assert graphs[0].read_bytes() != b"not an onnx graph"


def test_a_damaged_export_of_a_model_without_a_file_is_exported_again(
        tmp_path, monkeypatch, caplog):
    """Such a model's export is cached by its weights' fingerprint, not by a file's hash."""
    monkeypatch.setenv("CANET_ROS_CACHE", str(tmp_path / "cache"))
    frame = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)

    def untrained():
        torch.manual_seed(3)
        return SegmentationEngine(None, backbone="mobilenetv2", device="cpu",
                                  resolution=(96, 64), warmup=False)

    expected = untrained().infer(frame).labels
    graphs = list((tmp_path / "cache" / "onnx").glob("canet_*.onnx"))
    assert len(graphs) == 1
    graphs[0].write_bytes(b"not an onnx graph")
    engine = untrained()  # warns, exports again, rewrites
    assert engine.runtime == "onnxruntime" and "unusable" in caplog.text
    np.testing.assert_array_equal(engine.infer(frame).labels, expected)
    assert graphs[0].read_bytes() != b"not an onnx graph"


# -- canet benchmark --startup ----------------------------------------------------------
def test_until_ready_times_the_ready_line_and_stops_the_process(tmp_path):
    script = tmp_path / "node.py"
    script.write_text("import time, sys\nprint('loading', flush=True)\ntime.sleep(0.3)\n"
                      "print('[INFO] ready: CANet', flush=True)\ntime.sleep(60)\n")
    seconds, last = startup._until_ready([sys.executable, str(script)], {})
    assert 0.3 <= seconds < 30 and "ready" in last
    script.write_text("print('cannot start: bad checkpoint')\n")
    seconds, last = startup._until_ready([sys.executable, str(script)], {})
    assert seconds is None and last == "cannot start: bad checkpoint"


def test_measure_startup_reports_every_figure(monkeypatch):
    calls = []

    def fake_run(argv, env=None):
        calls.append(argv)
        return (0.25 if "--help" in argv else 1.5), (0 if "--help" in argv else 1), ""

    monkeypatch.setattr(startup, "_run", fake_run)
    monkeypatch.setattr(startup, "_cache_export", lambda checkpoint: None)
    ready = iter([(2.0, "ready"), (20.0, "ready")])
    monkeypatch.setattr(startup, "_until_ready", lambda argv, env: next(ready))
    report = startup.measure_startup(subcommand_names(), "default", progress=False)
    commands = subcommand_names()
    assert {"benchmark", "train", "segment-bag"} <= set(commands)
    assert set(report["help_s"]) == {"--help", *(f"{c} --help" for c in commands)}
    assert report["help_max_s"] == 0.25
    assert (report["node_bad_parameter_exit_s"], report["node_bad_parameter_status"]) == (1.5, 1)
    assert (report["node_ready_cached_s"], report["node_ready_uncached_s"]) == (2.0, 20.0)
    assert any("device:=tpu" in argv for argv in calls)
    json.dumps(report)
    text = startup.summary(report)
    assert "node ready, export cached" in text and "2.00 s" in text
