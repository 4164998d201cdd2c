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

"""Progress display for long work: a tqdm bar on a terminal, plain lines in logs.

tqdm redraws one line with carriage returns, which a CI log or ``> log.txt`` shows as
nothing for minutes and then one garbled line. Where stderr is not a terminal, a plain
progress line is printed instead whenever another 10 % is done or 10 s have passed.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterable, Iterator, Optional, TextIO

__all__ = ["PlainProgress", "progress"]


class PlainProgress:
    """The part of tqdm's interface this package uses, printing whole lines.

    A line is printed when the count enters the next ``every_fraction`` of ``total``
    (10 %, 20 %, ...) or ``every_s`` seconds after the previous line, and at close if
    anything happened since. tqdm-only options (``leave``, ``dynamic_ncols`` ...) are
    accepted and ignored; ``clock`` is for tests.
    """

    def __init__(self, iterable: Optional[Iterable] = None, total: Optional[float] = None,
                 desc: Optional[str] = None, unit: str = "it", initial: int = 0,
                 disable: Optional[bool] = False, file: Optional[TextIO] = None,
                 every_s: float = 10.0, every_fraction: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, **_: Any):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc or "", unit
        self.n, self.disable = int(initial), bool(disable)
        self.file = file or sys.stderr
        self.every_s = every_s
        # Whole steps per total, so 30/100 is in step 3 exactly (no float rounding).
        self._steps = max(1, round(1.0 / every_fraction))
        self.postfix = ""
        self._clock = clock
        self._t0 = self._last_t = clock()
        self._start_n = self._last_n = self.n
        self._closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def set_postfix(self, ordered_dict: Optional[dict] = None, refresh: bool = True,
                    **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        pass

    @classmethod
    def write(cls, s: str, file: Optional[TextIO] = None, end: str = "\n",
              nolock: bool = False) -> None:
        """Print a message between progress lines (tqdm.write's signature)."""
        print(s, file=file or sys.stderr, end=end, flush=True)

    def update(self, n: float = 1) -> None:
        self.n += int(n)
        now = self._clock()
        if self._step(self.n) > self._step(self._last_n) or now - self._last_t >= self.every_s:
            self._emit(now)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n != self._last_n:
                self._emit(self._clock())

    def _step(self, n: int) -> int:
        return n * self._steps // int(self.total) if self.total else 0

    def _emit(self, now: float) -> None:
        self._last_n, self._last_t = self.n, now
        if self.disable:
            return
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        elapsed = now - self._t0
        rate = (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0
        tail = f", {self.postfix}" if self.postfix else ""
        head = f"{self.desc}: " if self.desc else ""
        print(f"{head}{done} {self.unit}{pct}, {elapsed:.0f} s, {rate:.2f} {self.unit}/s{tail}",
              file=self.file, flush=True)


def progress(iterable: Optional[Iterable] = None, **kwargs: Any) -> Any:
    """Return a tqdm bar where stderr is a terminal, else a PlainProgress (same calls work).

    Without tqdm (a dependency, but a robot's image may lack it) a terminal gets plain lines.
    """
    stream = kwargs.get("file") or sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        try:
            from tqdm import tqdm
        except ModuleNotFoundError as exc:  # a broken install: plain lines still show progress
            if exc.name != "tqdm":
                raise
            return PlainProgress(iterable, **kwargs)
        for plain_only in ("every_s", "every_fraction", "clock"):  # tqdm rejects these
            kwargs.pop(plain_only, None)
        kwargs.setdefault("dynamic_ncols", True)
        return tqdm(iterable, **kwargs)
    return PlainProgress(iterable, **kwargs)
