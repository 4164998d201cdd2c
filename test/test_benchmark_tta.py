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


"""``canet benchmark --tta``: the cost block of the offline tools' test-time augmentation.

Only arithmetic and consistency are asserted; timings themselves are noise here.
"""
import argparse
import json
import math

import pytest

from canet_ros.benchmark.tta import tta_report
from canet_ros.cli import benchmark as cli
from canet_ros.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_report_ratios_by_hand():
    med = {"offline_labels": 10.0, "offline_tta_flip": 21.0, "offline_tta_scales": 64.0,
           "pipeline_labels": 12.0, "pipeline_labels_tta": 30.0}
    t = tta_report(med, (0.5, 1.0))
    assert t["scales"] == [0.5, 1.0]
    assert t["offline_tta_flip_over_plain"] == pytest.approx(2.1)
    assert t["pipeline_labels_tta_over_plain"] == pytest.approx(2.5)
    assert t["offline_tta_scales_over_plain"] == pytest.approx(6.4)
    assert t["offline_tta_scales_passes"] == 4  # two scales, each with its mirror image
    flip_only = tta_report({k: v for k, v in med.items() if k != "offline_tta_scales"}, (1.0,))
    assert "offline_tta_scales_ms" not in flip_only and "offline_tta_scales_passes" not in flip_only


def parse(*argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["benchmark", *argv])


def test_cli_json_with_tta(capsys):
    args = parse("--height", "64", "--width", "64", "--device", "cpu", "--iters", "2",
                 "--warmup", "0", "--matmul-size", "128", "--tta", "--tta-scales", "0.5", "1",
                 "--json", "--no-progress")
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    t = report["tta"]
    assert "compare" not in report  # the TTA calls are not other models
    assert t["scales"] == [0.5, 1.0] and t["offline_tta_scales_passes"] == 4
    for key in ("offline_labels_ms", "offline_tta_flip_ms", "offline_tta_scales_ms",
                "pipeline_labels_tta_ms"):
        assert isinstance(t[key], float) and math.isfinite(t[key]) and t[key] > 0, key
    assert t["offline_tta_flip_over_plain"] == pytest.approx(
        t["offline_tta_flip_ms"] / t["offline_labels_ms"])
    # Same interleaved run as the main figures: the plain frame path is the report's own.
    assert t["pipeline_labels_tta_over_plain"] == pytest.approx(
        t["pipeline_labels_tta_ms"] / report["pipeline_labels_ms"])
    summary = cli._summary(report)
    assert "evaluate flip" in summary and "6 passes" not in summary and "4 passes" in summary


@pytest.mark.parametrize("command", ["benchmark", "evaluate"])
@pytest.mark.parametrize("scale", ["0", "-1", "nan", "5", "big"])
def test_bad_tta_scales_are_usage_errors(command, scale, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--tta", "--tta-scales", scale])
    assert exc.value.code == 2 and "--tta-scales" in capsys.readouterr().err


def test_tta_scales_need_tta(capsys):
    assert main(["benchmark", "--tta-scales", "1", "--no-progress"]) == 1
    assert "--tta-scales needs --tta" in capsys.readouterr().err
