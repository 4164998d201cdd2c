"""The ``canet`` command: one entry point, one module per subcommand."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import List, Optional

# Each module exposes add_parser(subparsers) and run(args) -> int. Imported lazily
# per module so ``canet info`` does not pay for the bag or training stacks.
SUBCOMMANDS = ("info", "train", "evaluate", "benchmark", "segment_bag")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="canet", description="CANet semantic segmentation: train, evaluate, "
        "benchmark, segment rosbags, inspect models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        module.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("canet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
