"""The ``canet`` command: one entry point, one module per subcommand."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any, Callable, List, Optional

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


def run_command(func: Callable[[Any], Optional[int]], args: Any, prog: str = "canet") -> int:
    """Run a subcommand; Ctrl-C and a closed output pipe end it without a traceback."""
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``canet ... --json | head``): stop quietly, as cat does.
        # stdout is pointed at /dev/null so the interpreter's final flush cannot fail again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a file descriptor (embedded, tests)
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
