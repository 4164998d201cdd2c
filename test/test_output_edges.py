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


"""Edges of chart labels, the int8 graph's deletion rule and the CLI's output escapes.

Each test kills a mutant of this session's code that the other tests let live.
"""


def test_vis2_undrawable_names_without_ids_are_told_apart():
    from canet_ros.visualize import short_labels
    labels = short_labels(["道路", "建物"], 20, None, lambda n: False)
    assert len(set(labels)) == 2, labels  # drawn as boxes: only the number tells them apart
    assert labels[0].endswith("(1)") and labels[1].endswith("(2)")


def test_cpu3_an_int8_graph_this_user_cannot_read_is_not_damaged(tmp_path, monkeypatch):
    import onnx

    from canet_ros.inference import cpu_runners
    path = tmp_path / "m_int8.onnx"
    path.write_bytes(b"x")

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(onnx, "load", denied)
    assert cpu_runners._ours_and_damaged(path) is False


def test_cli1_surrogate_to_a_utf16_stream_is_escaped_not_raw():
    from canet_ros.cli import _escape_unencodable
    text = "a\udce9b"
    try:
        text.encode("utf-16")
    except UnicodeEncodeError as exc:
        rep, _ = _escape_unencodable(exc)
    assert isinstance(rep, str), rep
