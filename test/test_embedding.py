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

"""The engine embedded in a program that builds several at once, in threads.

torch.onnx.export keeps process-wide state, and warnings.catch_warnings swaps the
process-wide filter list: two exports at once broke each other's graphs (the engine fell
back to torch) and could leave a catch-all "ignore" filter that silenced the host
program's own warnings. The network here waits at a barrier while it is traced, so two
exports overlap for sure unless they run one after the other; it notes how many traces
run at once.
"""
import threading
import warnings

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
SIZES = ((64, 48), (96, 64))  # (W, H)
BARRIER_WAIT_S = 2.0  # how long a trace waits for the other one, in case they never meet


class Meeting:
    """Counts the traces running at once; each waits at a barrier for the other."""

    def __init__(self, parties: int):
        self.barrier = threading.Barrier(parties)
        self.lock = threading.Lock()
        self.inside = self.most = 0

    def __enter__(self):
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        try:
            self.barrier.wait(BARRIER_WAIT_S)
        except threading.BrokenBarrierError:  # the other one is not tracing now
            pass

    def __exit__(self, *exc):
        with self.lock:
            self.inside -= 1


def tiny_net(meeting: Meeting, seed: int):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.conv = nn.Conv2d(3, 5, 3, padding=1)

        def forward(self, x):
            with meeting:
                return torch.relu(self.conv(x)) + x.mean(dim=1, keepdim=True)

    return Net().eval()


def run_graph(data: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def export_in_threads(meeting: Meeting, nets) -> dict:
    from canet_ros.inference.onnx_runtime import export_onnx

    graphs, errors = {}, []

    def export(size, net):
        try:
            graphs[size] = export_onnx(net, size, use_cache=False)
        except Exception as exc:  # reported by the test, with the size
            errors.append(f"{size}: {exc!r}")

    threads = [threading.Thread(target=export, args=(size, net))
               for size, net in zip(SIZES, nets, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    return graphs


def test_exports_in_threads_run_one_at_a_time_and_each_graph_is_right(one_torch_thread):
    import torch

    meeting = Meeting(len(SIZES))
    nets = [tiny_net(meeting, seed) for seed in range(len(SIZES))]
    before = list(warnings.filters)
    graphs = export_in_threads(meeting, nets)
    assert meeting.most == 1, "two ONNX exports ran at once"
    # The host's filters are as they were: no "ignore" left behind by either export.
    assert warnings.filters == before
    for (width, height), net in zip(SIZES, nets, strict=True):
        x = np.random.default_rng(width).standard_normal((1, 3, height, width)).astype(
            np.float32)
        with torch.no_grad():
            expected = net(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(run_graph(graphs[(width, height)], x), expected,
                                   rtol=1e-4, atol=1e-5)


def test_quiet_warnings_in_threads_leaves_no_filter_behind():
    from canet_ros.inference.onnx_runtime import quiet_warnings

    before = list(warnings.filters)
    meeting = Meeting(3)

    def quiet():
        with quiet_warnings(), meeting:
            warnings.warn("silenced inside", stacklevel=1)

    threads = [threading.Thread(target=quiet) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert meeting.most == 1
    assert warnings.filters == before
    with pytest.warns(UserWarning, match="the host's own"):
        warnings.warn("the host's own warning", stacklevel=1)
