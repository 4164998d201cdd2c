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

"""tools/gpu_check.py: the prepared first call on a lent GPU (docs/gpu_check.md).

Its parts on their own (which tests count as CUDA tests, the compact CamVid copy, the
carry budget, the limits on what comes back, the epoch plan) and its dry run end to end
on a tiny synthetic CamVid, on the CPU.
"""
import argparse
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_training import make_camvid_tree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import gpu_check_prepare as prep  # noqa: E402
import gpu_check_report  # noqa: E402
import gpu_check_run  # noqa: E402
import gpu_check_train  # noqa: E402
from gpu_check_report import out_problems  # noqa: E402
from gpu_check_run import Context, step_tests  # noqa: E402
from gpu_check_tests import cuda_tests_in, find_cuda_tests  # noqa: E402
from gpu_check_train import plan_epochs  # noqa: E402

FAKE_TORCH = ("import types\nimport pytest\ntorch = types.SimpleNamespace(cuda=types."
              "SimpleNamespace(is_available=lambda: False))\n")


def test_cuda_tests_are_found_in_every_form_and_cpu_only_ones_are_not(tmp_path):
    tests = tmp_path / "test"
    tests.mkdir()
    (tests / "test_whole.py").write_text(FAKE_TORCH + textwrap.dedent("""
        pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="cuda")
        def test_a(): pass
        """))
    (tests / "test_mixed.py").write_text(FAKE_TORCH + textwrap.dedent("""
        @pytest.mark.skipif(not torch.cuda.is_available(), reason="cuda")
        def test_marked(): pass
        def test_guarded():
            '''Skips in its body.'''
            if not torch.cuda.is_available():
                pytest.skip("cuda")
        @pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
        def test_cpu_only(): pass
        def test_plain(): pass
        class TestGroup:
            @pytest.mark.skipif(not torch.cuda.is_available(), reason="cuda")
            def test_method(self): pass
            def test_other(self): pass
        """))
    assert find_cuda_tests(tests) == ["test/test_mixed.py::test_marked",
                                      "test/test_mixed.py::test_guarded",
                                      "test/test_mixed.py::TestGroup::test_method",
                                      "test/test_whole.py"]
    # The project's own: the engine's CUDA file as a whole, none of the CPU engine tests.
    assert cuda_tests_in(REPO / "test" / "test_engine_cuda.py") == ["test/test_engine_cuda.py"]
    assert cuda_tests_in(REPO / "test" / "test_engine.py") == []


def test_tests_step_runs_exactly_the_cuda_tests_and_counts_them(tmp_path):
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "test_gated.py").write_text(FAKE_TORCH + textwrap.dedent("""
        @pytest.mark.skipif(not torch.cuda.is_available(), reason="cuda")
        def test_one(): pass
        @pytest.mark.skipif(not torch.cuda.is_available(), reason="cuda")
        def test_two(): pass
        def test_not_selected(): assert False, "a CPU test must not run in this step"
        """))
    ctx = Context(repo=tmp_path, out=tmp_path / "out", work=tmp_path / "work",
                  payload=tmp_path / "payload", data=None, dry=True, budget_s=1000.0,
                  train_s=10.0, bench_limit=None, env={"PATH": "/usr/bin:/bin"})
    res = step_tests(ctx)
    assert res["selected"] == ["test/test_gated.py::test_one", "test/test_gated.py::test_two"]
    assert res["counts"] == {"tests": 2, "failures": 0, "errors": 0, "skipped": 2, "passed": 0}
    assert res["ok"]


def _source(tmp_path: Path, size=(96, 72)) -> Path:
    return make_camvid_tree(tmp_path / "src", frames=3, size=size)


def test_compact_copy_keeps_names_and_labels_and_stores_jpeg(tmp_path):
    src = _source(tmp_path)
    manifest = prep.compact_camvid(src, tmp_path / "copy", (480, 360), 95, progress=False)
    assert manifest["frames"] == {"train": 3, "val": 3}
    for split in ("train", "val"):
        names = sorted(p.name for p in (src / split).iterdir())
        assert sorted(p.name for p in (tmp_path / "copy" / split).iterdir()) == names
        for name in names:
            frame_bytes = (tmp_path / "copy" / split / name).read_bytes()
            assert frame_bytes[:2] == b"\xff\xd8"  # JPEG content under the .png name
            original = cv2.imread(str(src / split / name))
            copy = cv2.imread(str(tmp_path / "copy" / split / name))
            # Exactly the frame through OpenCV's JPEG at quality 95, nothing else.
            ref = cv2.imdecode(cv2.imencode(".jpg", original, [cv2.IMWRITE_JPEG_QUALITY, 95])[1],
                               cv2.IMREAD_COLOR)
            assert np.array_equal(copy, ref)
            label = cv2.imread(str(tmp_path / "copy" / f"{split}annot" / name),
                               cv2.IMREAD_UNCHANGED)
            assert np.array_equal(label, cv2.imread(str(src / f"{split}annot" / name),
                                                    cv2.IMREAD_UNCHANGED))


def test_compact_copy_only_shrinks_and_labels_stay_class_ids(tmp_path):
    src = _source(tmp_path, size=(96, 72))
    prep.compact_camvid(src, tmp_path / "copy", (48, 48), 90, progress=False)
    name = sorted((src / "train").iterdir())[0].name
    frame = cv2.imread(str(tmp_path / "copy" / "train" / name))
    label = cv2.imread(str(tmp_path / "copy" / "trainannot" / name), cv2.IMREAD_UNCHANGED)
    assert frame.shape[:2] == label.shape == (36, 48)  # 96x72 fitted into 48x48
    original = cv2.imread(str(src / "trainannot" / name), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(label)) <= set(np.unique(original))  # nearest: no blended ids


def test_prepare_counts_what_travels_and_refuses_over_budget(tmp_path):
    if subprocess.run(["git", "rev-parse"], cwd=REPO, capture_output=True).returncode:
        pytest.skip("not a git checkout (a source copy): prepare measures the git working "
                    "tree the device tool sends")
    src = _source(tmp_path)
    payload = tmp_path / "payload"
    report = prep.prepare(REPO, payload, src, (480, 360), 95, wheels=False, with_av="no",
                          budget_mib=1000.0, progress=False)
    copy_bytes = sum(p.stat().st_size for p in (payload / "camvid").rglob("*") if p.is_file())
    assert report["mib"]["camvid"] == round(copy_bytes / 2 ** 20, 2)
    assert report["mib"]["total"] == pytest.approx(report["mib"]["tree"] + report["mib"]["camvid"],
                                                   abs=0.02)
    assert report["device_call"]["carry"] == [report["payload"]]
    tree_mib = report["mib"]["tree"]
    with pytest.raises(prep.PrepareError, match="carry budget"):
        prep.prepare(REPO, payload, src, (480, 360), 95, wheels=False, with_av="no",
                     budget_mib=tree_mib, progress=False)  # less 1 MiB margin: over


def test_prepare_cli_refusal_is_one_error_line_and_status_1(tmp_path):
    src = _source(tmp_path)
    done = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_check.py"), "prepare",
                           "--no-wheels", "--no-progress", "--camvid", str(src), "--payload",
                           str(tmp_path / "payload"), "--budget-mib", "1"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("gpu_check prepare: error:")
    assert len(done.stderr.strip().splitlines()) == 1


def test_out_problems_follow_the_device_tools_limits(tmp_path):
    for i in range(8):
        (tmp_path / f"f{i}.txt").write_text("x")
    assert out_problems(tmp_path) == []
    (tmp_path / "f8.txt").write_text("x")
    (tmp_path / "bad name.txt").write_text("x")
    with open(tmp_path / "big.bin", "wb") as fh:
        fh.truncate(16 * 2 ** 20 + 1)
    problems = " | ".join(out_problems(tmp_path))
    assert "11 files, more than 8" in problems
    assert "big.bin" in problems and "bad name.txt" in problems


def _ctx(tmp_path: Path, **kw) -> Context:
    values = {"repo": tmp_path, "out": tmp_path / "out", "work": tmp_path / "work",
              "payload": tmp_path / "payload", "data": tmp_path, "dry": True,
              "budget_s": 1000.0, "train_s": 100.0, "bench_limit": None}
    return Context(**{**values, **kw})


def test_time_is_held_back_only_for_later_steps_that_were_asked_for(tmp_path):
    # docs/gpu_check.md's rerun "--steps setup,bench with a shorter --budget-s" must bench.
    import gpu_check_run

    needs = gpu_check_run.NEED_S["dry"]
    ctx = _ctx(tmp_path, budget_s=300.0)
    spare = ctx.left() - gpu_check_run.SUMMARY_S
    assert ctx.box(1e9, ("train",)) == pytest.approx(spare - needs["train"], abs=1.0)
    ctx.steps = frozenset({"setup", "bench"})
    assert ctx.box(1e9, ("train",)) == pytest.approx(spare, abs=1.0)
    assert ctx.box(1e9, ("bench", "train")) == pytest.approx(spare - needs["bench"], abs=1.0)


@pytest.mark.parametrize("models, ok", [(("canet2",), True), (("canet1", "canet2"), True),
                                        (("canet1",), True)])
def test_train_step_judges_the_models_asked_for(tmp_path, monkeypatch, models, ok):
    # docs/gpu_check.md's rerun "--models canet2" trains CANet2 alone: that is a success.
    import gpu_check_train

    monkeypatch.setattr(gpu_check_train, "train_one",
                        lambda ctx, tag, backbone, seconds: {"backbone": backbone, "ok": True})
    monkeypatch.setattr(gpu_check_train, "evaluate_and_export", lambda ctx, tag, res: None)
    res = gpu_check_train.step_train(_ctx(tmp_path, models=models))
    assert res["ok"] is ok
    assert sorted(t for t, m in res["models"].items() if m.get("ok")) == sorted(models)


def test_train_step_fails_when_the_first_model_asked_for_fails(tmp_path, monkeypatch):
    import gpu_check_train

    monkeypatch.setattr(gpu_check_train, "train_one", lambda ctx, tag, backbone, seconds: {
        "backbone": backbone, "ok": tag != "canet2"})
    monkeypatch.setattr(gpu_check_train, "evaluate_and_export", lambda ctx, tag, res: None)
    assert gpu_check_train.step_train(_ctx(tmp_path, models=("canet2",)))["ok"] is False


def test_epoch_plan_by_hand():
    # 20 s timing run with epochs of 5 s and 3 s: start-up 12 s, steady 3 s per epoch.
    # 100 s more: floor((90 - 12) / (3 * 1.25)) = floor(20.8) = 20 epochs after the 2 done.
    rows = [{"epoch_s": "5"}, {"epoch_s": "3"}]
    assert plan_epochs({"wall_s": 20.0}, rows, 100.0, 2) == (22, 3.0, 12.0)
    assert plan_epochs({"wall_s": 20.0}, rows, 10.0, 2)[0] == 2  # nothing more fits


# What `canet benchmark --json` printed when the reviewer's run was stopped at its box while
# timing (dry run, 64x32): the stream figures were never reached, so they are None.
PARTIAL = {"device": "AMD EPYC", "device_type": "cpu", "interrupted": True,
           "model_ms": 50.03134800006137, "model_fps": 19.987468656626508,
           "pipeline_labels_ms": 53.385110000021996, "pipeline_all_ms": 61.95430800005397,
           "pipeline_stream_ms": None, "pipeline_stream_fps": None}
# ... and stopped before one full round: every timed figure is None.
NO_ROUND = {**PARTIAL, **dict.fromkeys(("model_ms", "model_fps", "pipeline_labels_ms",
                                        "pipeline_all_ms"))}


def _partial_run(report=PARTIAL) -> dict:
    return {"name": "fp16_graph", "rc": 130, "timed_out": True, "report": report,
            "graph_captured": True}


def test_partial_benchmark_lines_show_what_was_measured_and_na_for_the_rest():
    assert gpu_check_report._bench_line(_partial_run()) == (
        "  fp16_graph             model  50.031 ms      20 FPS | labels  53.39 ms | "
        "all four  61.95 ms | stream    n/a FPS | graph, PARTIAL (stopped at its box)")
    assert gpu_check_report._bench_line(_partial_run(NO_ROUND)) == (
        "  fp16_graph             model     n/a ms     n/a FPS | labels    n/a ms | "
        "all four    n/a ms | stream    n/a FPS | graph, PARTIAL (stopped at its box)")
    # Stopped from outside rather than at its box: still marked as partial.
    assert gpu_check_report._bench_line({**_partial_run(), "timed_out": False}).endswith(
        "| graph, PARTIAL (interrupted)")
    bench = {"runs": [_partial_run()]}
    checks = gpu_check_report.target_checks(bench)
    assert gpu_check_report._bench_lines(bench, checks)[-2:] == [
        "  target model_fps >= 1000: NOT met (20)",
        "  target pipeline_stream_fps >= 500: not measured"]


@pytest.fixture
def stand_in_steps(monkeypatch):
    """Give run_all a bench step returning a partial run and a train step noting its call.

    The run's own SIGINT/SIGTERM handlers are put back afterwards.
    """
    called = []
    monkeypatch.setattr(gpu_check_run, "step_bench", lambda ctx: {
        "runs": [_partial_run()], "ok": False})
    monkeypatch.setattr(gpu_check_train, "step_train", lambda ctx: called.append("train") or {
        "ok": True, "recipe": "stand-in"})
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield called
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _run_all(tmp_path: Path) -> int:
    args = argparse.Namespace(dry_run=True, out=tmp_path / "out", work=tmp_path / "work",
                              payload=str(tmp_path / "none"), data=None, budget_s=900.0,
                              train_s=None, steps="bench,train", models="canet1",
                              bench_limit=1)
    return gpu_check_run.run_all(args, REPO)


def test_run_with_a_partial_benchmark_goes_on_to_train_and_writes_the_summary(
        tmp_path, stand_in_steps):
    assert _run_all(tmp_path) == 1  # the benchmark did not finish: not ok, not a crash
    assert stand_in_steps == ["train"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "report_errors" not in summary
    assert summary["steps"]["train"]["ok"] is True
    text = (tmp_path / "out" / "summary.txt").read_text()
    assert "stream    n/a FPS | graph, PARTIAL (stopped at its box)" in text
    assert "step verdicts: setup not asked, tests not asked, bench FAILED, train ok" in text


@pytest.mark.parametrize("text_broken", [False, True])
def test_a_failing_report_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch,
                                                          stand_in_steps, text_broken):
    def boom(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(gpu_check_report, "write_report", boom)
    if text_broken:  # the plainest summary is left
        monkeypatch.setattr(gpu_check_report, "summary_text", boom)
    assert _run_all(tmp_path) == 1
    assert stand_in_steps == ["train"]  # the next step still ran
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [e["after"] for e in summary["report_errors"]] == ["bench", "train", "the last step"]
    assert {e["error"] for e in summary["report_errors"]} == {"RuntimeError: disk on fire"}
    assert summary["steps"]["bench"]["runs"][0]["report"] == PARTIAL
    assert summary["steps"]["train"]["recipe"] == "stand-in"
    text = (tmp_path / "out" / "summary.txt").read_text()
    assert "REPORT ERROR after bench: RuntimeError: disk on fire" in text
    if text_broken:
        assert "bench: FAILED\ntrain: ok\n" in text and "plain summary" in text
    else:
        assert "train: stand-in" in text and "PARTIAL" in text


def test_dry_run_end_to_end_on_a_tiny_camvid(tmp_path):
    data = make_camvid_tree(tmp_path / "camvid", frames=4)  # 0006R0 in train, 0016E5 in val
    out = tmp_path / "out"
    # ~45 s on two cores with other work; the generous budget only matters when they are
    # starved (a step's box is no assertion here).
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tools" / "gpu_check.py"), "run", "--dry-run",
         "--steps", "bench,train", "--bench-limit", "1", "--models", "canet1",
         "--train-s", "25", "--budget-s", "900", "--data", str(data), "--out", str(out),
         "--work", str(tmp_path / "work"), "--payload", str(tmp_path / "none")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        stdout, stderr = proc.communicate(timeout=1000)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the run stops its own children on SIGTERM
        stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stdout + stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    bench = summary["steps"]["bench"]["runs"][0]["report"]
    assert (bench["width"], bench["height"], bench["device_type"]) == (64, 32, "cpu")
    assert bench["model_ms"] > 0
    model = summary["steps"]["train"]["models"]["canet1"]
    held, val = model["eval"]["heldout"], model["eval"]["val_seen_in_training"]
    assert held["frames"] == 4 and held["seen_in_training"] == 0  # drive 0006R0, never trained
    assert val["frames"] == 4 and val["seen_in_training"] == 4  # train+val: val is trained on
    assert 0.0 <= held["miou"] <= 1.0
    assert summary["steps"]["train"]["models"]["canet2"]["skipped"]
    assert out_problems(out) == []
    ck = torch.load(out / "canet1_mobilenetv2_camvid_gpu_fp16.pt", map_location="cpu",
                    weights_only=True)
    assert {t.dtype for t in ck["state_dict"].values() if t.is_floating_point()} == {
        torch.float16}
    text = (out / "summary.txt").read_text()
    assert len(text.splitlines()) <= 30 and "DRY RUN" in text
