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

"""The accuracy rule of the CPU precisions, measured through the engine.

That is what the node and segment-bag run: CamVid val mIoU per precision and the share
of pixels whose label equals fp32's.

    python tools/cpu_precision_accuracy.py [--data-root ../shared/data/camvid]
        [--resolution 480x360] [--precisions fp32 bf16 int8] [--json]

Rule (docs/performance.md): a precision used by default must stay within 0.3 mIoU of
fp32 and agree with fp32's labels on at least 99.5 % of pixels.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from canet_ros.data.camvid import camvid_pairs, read_image, read_label  # noqa: E402
from canet_ros.inference import SegmentationEngine  # noqa: E402
from canet_ros.metrics import ConfusionMatrix  # noqa: E402
from canet_ros.progress import progress  # noqa: E402

MIOU_MARGIN, AGREEMENT = 0.3, 99.5


def measure(root: Path, resolution: str, precisions: list[str], checkpoint: str = "default"
            ) -> dict[str, dict[str, float]]:
    """Measure mIoU (%) and agreement with fp32 (% of pixels) per precision on val."""
    engines = {p: SegmentationEngine(checkpoint, device="cpu", precision=p,
                                     resolution=resolution) for p in ["fp32", *precisions]}
    num_classes = engines["fp32"].num_classes
    cms = {p: ConfusionMatrix(num_classes, num_classes) for p in engines}
    agree = dict.fromkeys(engines, 0)
    total = 0
    for image, label in progress(camvid_pairs(root, "val"), desc="val", unit="frame"):
        frame, truth = read_image(image), read_label(label)
        ref = engines["fp32"].infer(frame).labels.copy()
        total += ref.size
        for name, engine in engines.items():
            labels = ref if name == "fp32" else engine.infer(frame).labels
            cms[name].update(labels, truth)
            agree[name] += int(np.count_nonzero(labels == ref))
    return {p: {"runtime": e.runtime, "miou": 100 * cms[p].miou(),
                "agreement": 100 * agree[p] / total} for p, e in engines.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared/data/camvid"))
    parser.add_argument("--resolution", default="480x360")
    parser.add_argument("--precisions", nargs="+", default=["bf16", "int8"])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(Path(args.data_root), args.resolution,
                     [p for p in args.precisions if p != "fp32"], args.checkpoint)
    if args.json:
        print(json.dumps(result))
        return 0
    base = result["fp32"]["miou"]
    for name, r in result.items():
        ok = r["miou"] >= base - MIOU_MARGIN and r["agreement"] >= AGREEMENT
        print(f"{name:5s} {r['runtime']:12s} mIoU {r['miou']:6.2f} ({r['miou'] - base:+.2f})  "
              f"labels equal to fp32 {r['agreement']:7.3f} %  rule {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
