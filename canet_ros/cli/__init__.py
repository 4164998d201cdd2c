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

"""The ``canet`` command: one entry point, one module per subcommand.

Building the parser must stay cheap (``canet --help`` answers at once): subcommand
modules import torch and the rest of their stack inside ``run``, never at the top.
"""
from __future__ import annotations

import argparse
import codecs
import contextlib
import importlib
import logging
import os
import select
import sys
from typing import Any, Callable, Iterator, List, Optional

from .. import __version__
from ..errors import CanetError, missing_package, out_of_memory

# Each module exposes add_parser(subparsers) and run(args) -> int.
SUBCOMMANDS = ("info", "train", "evaluate", "benchmark", "segment_bag", "export",
               "extract_frames", "dataset")

EXIT_OK = 0
EXIT_ERROR = 1          # bad input: a file, folder or value; the message says which
EXIT_USAGE = 2          # what argparse uses for unknown options and malformed values
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a reader that went away
EXIT_TERMINATED = 143   # 128 + SIGTERM, as a shell reports a process that SIGTERM ended

EPILOG = f"""\
exit status (every subcommand):
  {EXIT_OK:<4} success
  {EXIT_ERROR:<4} error in what was given (a file, folder or value); one line on stderr,
       "canet COMMAND: error: ...", names it and the problem; also out of memory
       (the line says what failed and which limit or option to change) and a
       package that is not installed (the line says which and how to install it)
  {EXIT_USAGE:<4} usage error: unknown option, missing or malformed argument
  {EXIT_INTERRUPTED:<4} interrupted (Ctrl-C); long jobs leave valid output behind
  {EXIT_BROKEN_PIPE:<4} the output pipe closed early (e.g. "canet ... --json | head")
  {EXIT_TERMINATED:<4} stopped by SIGTERM (docker stop, systemd, a scheduler): as Ctrl-C

"canet COMMAND --help" describes each command."""

log = logging.getLogger("canet_ros.cli")


def __getattr__(name: str) -> Any:
    # The subcommands import positive_int from here. argtypes imports numpy and pyyaml
    # (through training): loaded on first use, a missing one is main()'s one error line,
    # not a traceback at "import canet_ros.cli".
    if name == "positive_int":
        from .argtypes import positive_int
        return positive_int
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def tta_scale(text: str) -> float:
    """Parse a test-time input scale, a finite number in (0, 4] (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 4.0:  # also rejects nan; beyond 4x a frame is mostly padding cost
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0 and at most 4")
    return value


def prior_strength(text: str) -> float:
    """Parse a prior-correction strength, a finite number in [0, 2] (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 2.0:  # also rejects nan; 1 already gives the calibrated posterior
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 2")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="canet", description="CANet semantic segmentation: train, evaluate, "
        "benchmark, export, segment rosbags, inspect models.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging; tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"{__name__}.{name}")
        module.add_parser(sub)
    return parser


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (embedded, tests)
        pass


def _output_closed() -> bool:
    """Return whether stdout or stderr is a pipe or socket whose reader has gone away."""
    if not hasattr(select, "poll"):  # Windows: cannot tell; a closed output is the likely one
        return True
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a file (embedded, tests)
            continue
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        # POLLERR: a pipe without a reader (Linux); POLLHUP: a closed socket, other systems.
        if any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0)):
            return True
    return False


def run_command(func: Callable[[Any], Optional[int]], args: Any, prog: str = "canet") -> int:
    """Run a subcommand under the exit-status convention in ``EPILOG``.

    Ctrl-C, SIGTERM (:mod:`.sigterm`) and a closed output pipe end it without a traceback;
    a ``CanetError`` or ``OSError`` (bad input) becomes one ``PROG: error: ...`` line and
    status 1, as do running out of memory (:func:`error_text` says so and what to do) and
    torch or a declared dependency not installed (:func:`missing_package`).
    """
    from .sigterm import sigterm_as_ctrl_c

    terminated: List[bool] = []
    with sigterm_as_ctrl_c(terminated):
        code = _run_guarded(func, args, prog, terminated)
    return EXIT_TERMINATED if terminated and code == EXIT_INTERRUPTED else code


def _run_guarded(func: Callable[[Any], Optional[int]], args: Any, prog: str,
                 terminated: List[bool]) -> int:
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError as exc:
        if _output_closed():
            # The reader went away (``canet ... --json | head``): stop quietly, as cat does.
            _quiet_stdout()
            return EXIT_BROKEN_PIPE
        # Another pipe (a DataLoader worker's, a helper process's): an error, not silence.
        log.debug("%s failed", prog, exc_info=True)
        print(f"{prog}: error: {exc} (a pipe to a helper process, not the output)",
              file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        missing = missing_package(exc)
        if (missing is None and not isinstance(exc, (CanetError, OSError))
                and out_of_memory(exc) is None):
            raise  # a bug: its traceback is what a report needs
        log.debug("%s failed", prog, exc_info=True)
        print(f"{prog}: error: {missing or error_text(exc, args)}", file=sys.stderr)
        return EXIT_ERROR


# The options that set how much memory a command takes, in the order worth lowering them.
_MEMORY_OPTIONS = (("resolution", "--resolution"), ("height", "--height/--width"),
                   ("crop_size", "--crop-size"), ("batch_size", "--batch-size"),
                   ("workers", "--workers"))


def error_text(exc: BaseException, args: Any) -> str:
    """Return the text of ``PROG: error: ...`` for ``exc``; out of memory says what to do.

    Out of memory is no bad input, but its traceback said neither that nor what to change:
    the line names the memory limits and those of ``args``' options that use memory.
    """
    lower = [flag for dest, flag in _MEMORY_OPTIONS if hasattr(args, dest)]
    return out_of_memory(exc, lower) or str(exc)


def _escape_unencodable(exc: UnicodeError) -> tuple[str | bytes, int]:
    # A byte of a file name the locale could not decode (a surrogate escape) goes out as
    # that byte, as Python's C-locale stdout does; any other character as \x.. or \u....
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    char = exc.object[exc.start]
    wide = exc.encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32"))
    if 0xDC80 <= ord(char) <= 0xDCFF and not wide:
        return bytes([ord(char) - 0xDC00]), exc.start + 1
    return char.encode("ascii", "backslashreplace").decode("ascii"), exc.start + 1


@contextlib.contextmanager
def _tolerant_output() -> Iterator[None]:
    """Print what stdout's encoding lacks (a class name 'Bâtiment' in ASCII) escaped.

    Under LC_ALL=C or PYTHONIOENCODING=ascii the summary of finished work raised
    UnicodeEncodeError, a traceback and exit 1. The streams' own handlers come back on the
    way out: a program calling main() keeps its settings.
    """
    codecs.register_error("canet_escape", _escape_unencodable)
    changed = []
    for stream in (sys.stdout, sys.stderr):
        try:
            errors = stream.errors
            stream.reconfigure(errors="canet_escape")
            changed.append((stream, errors))
        except (AttributeError, ValueError, OSError):  # not a text file (a test's StringIO)
            pass
    try:
        yield
    finally:
        for stream, errors in changed:
            try:
                stream.reconfigure(errors=errors)
            except (AttributeError, ValueError, OSError):  # closed by a broken pipe
                pass


def main(argv: Optional[List[str]] = None) -> int:
    with _tolerant_output():
        try:
            args = build_parser().parse_args(argv)
        except KeyboardInterrupt:
            print("canet: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except ModuleNotFoundError as exc:  # numpy or pyyaml, which the parser's types use
            if missing_package(exc) is None:
                raise
            print(f"canet: error: {missing_package(exc)}", file=sys.stderr)
            return EXIT_ERROR
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        return run_command(args.func, args, f"canet {args.command}")


def entry() -> None:
    """Run main() as the ``canet`` process (the console script; :func:`.sigterm.exit_quietly`)."""
    from .sigterm import exit_quietly
    exit_quietly(main, EXIT_INTERRUPTED)


if __name__ == "__main__":
    entry()
