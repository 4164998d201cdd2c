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

"""The child process of ``export_child.export_in_child``: build the engine, so the export.

Started by ``export_in_child`` with one JSON argument; exit status 0 when the
engine was built (its export is then in the cache), 2 on an EngineError.
"""
from __future__ import annotations

import json
import logging
import sys
from typing import Any

from .engine import EngineError, SegmentationEngine


def main(argv: list[str] | None = None) -> int:
    """Build an engine from ``argv[0]`` (the JSON ``export_in_child`` writes): the export."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    args: dict[str, Any] = json.loads((sys.argv[1:] if argv is None else argv)[0])
    try:
        SegmentationEngine(args["checkpoint"], backbone=args["backbone"], device="cpu",
                           precision=args["precision"], runtime=args["runtime"],
                           resolution=tuple(args["resolution"]) if args["resolution"] else None,
                           warmup=False)
    except EngineError as exc:  # the parent exports in-process and reports it in full
        print(f"EngineError: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
