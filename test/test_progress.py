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

"""Progress display: tqdm on a terminal, a plain line per 10 % or 10 s elsewhere."""
import io
import math
import re

import pytest
from tqdm import tqdm

from canet_ros.progress import PlainProgress, progress


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self):
        return True


class Clock:
    """Time that moves only when a test says so."""

    def __init__(self, step=0.0):
        self.now, self.step = 100.0, step

    def __call__(self):
        value = self.now
        self.now += self.step
        return value


def counts(text):
    """Return the done count of every printed line ("desc: 30/100 frame (30%), ...")."""
    return [int(m.group(1)) for m in re.finditer(r"^(?:.*: )?(\d+)(?:/\d+)? ", text, re.M)]


def test_lines_at_every_tenth_of_a_round_total():
    out = io.StringIO()
    bar = progress(total=100, unit="frame", desc="bag", file=out, clock=Clock())
    for _ in range(100):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert counts(out.getvalue()) == list(range(10, 101, 10))
    assert lines[2].startswith("bag: 30/100 frame (30%)")
    assert "\r" not in out.getvalue()


def test_lines_where_each_tenth_is_crossed_for_an_odd_total():
    # 25 frames: the k-th tenth is reached at ceil(2.5 k) = 3, 5, 8, 10, 13, ... 25.
    out = io.StringIO()
    bar = PlainProgress(total=25, file=out, clock=Clock())
    for _ in range(25):
        bar.update(1)
    bar.close()
    assert counts(out.getvalue()) == [math.ceil(2.5 * k) for k in range(1, 11)]


def test_a_big_step_prints_one_line_and_close_adds_the_rest():
    out = io.StringIO()
    bar = PlainProgress(total=1000, file=out, clock=Clock())
    bar.update(350)   # crosses 10 %, 20 % and 30 % at once: one line
    bar.update(5)     # still in the 30 % step: nothing
    bar.close()       # unreported progress since the last line: a final line
    bar.close()       # closing twice prints nothing more
    assert counts(out.getvalue()) == [350, 355]


def test_time_triggers_a_line_without_a_known_total():
    # The clock advances 4 s per reading: readings at 4, 8, 12 ... s after the start;
    # a line whenever 10 s have passed since the previous one, then one at close.
    out = io.StringIO()
    bar = PlainProgress(desc="scan", unit="msg", file=out, clock=Clock(step=4.0))
    for _ in range(10):
        bar.update(1)
    bar.close()
    assert counts(out.getvalue()) == [3, 6, 9, 10]
    assert out.getvalue().splitlines()[0] == "scan: 3 msg, 12 s, 0.25 msg/s"


def test_iterating_yields_everything_and_reports():
    out = io.StringIO()
    items = list(progress(range(20), desc="eval", file=out, clock=Clock()))
    assert items == list(range(20))
    assert counts(out.getvalue()) == list(range(2, 21, 2))


def test_initial_counts_from_the_resume_point():
    out = io.StringIO()
    bar = PlainProgress(total=10, initial=4, file=out, clock=Clock(step=1.0))
    for _ in range(6):
        bar.update(1)
    bar.close()
    assert counts(out.getvalue()) == [5, 6, 7, 8, 9, 10]
    # Rate counts only the steps done here: 1 step in the 1 s after the start.
    assert "1.00 it/s" in out.getvalue().splitlines()[0]


def test_postfix_and_description_appear_in_the_line():
    out = io.StringIO()
    bar = PlainProgress(total=2, desc="epoch 1/3", file=out, clock=Clock())
    bar.set_postfix(loss="0.5000", lr="1.00e-04", refresh=False)
    bar.update(1)
    bar.set_description("epoch 2/3")
    bar.update(1)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("epoch 1/3: 1/2 it (50%)")
    assert lines[0].endswith("loss=0.5000, lr=1.00e-04")
    assert lines[1].startswith("epoch 2/3: 2/2 it (100%)")


def test_disabled_prints_nothing_but_still_iterates():
    out = io.StringIO()
    assert sum(progress(range(5), file=out, disable=True)) == 10
    bar = progress(total=3, file=out, disable=True)
    bar.update(3)
    bar.close()
    assert out.getvalue() == ""


def test_write_prints_a_whole_line():
    out = io.StringIO()
    bar = progress(total=3, file=out)
    bar.write("exporting the model", file=out)
    assert out.getvalue() == "exporting the model\n"


def test_terminal_gets_tqdm_and_plain_only_options_are_dropped():
    term = Terminal()
    bar = progress(total=5, desc="x", file=term, every_s=5.0, every_fraction=0.2)
    assert isinstance(bar, tqdm)
    bar.update(5)
    bar.close()
    assert "5/5" in term.getvalue()


def test_closed_or_odd_streams_count_as_no_terminal():
    closed = io.StringIO()
    closed.close()
    assert isinstance(progress(total=1, file=closed), PlainProgress)
    assert isinstance(progress(total=1, file=object()), PlainProgress)


@pytest.mark.parametrize("stream", [io.StringIO, Terminal], ids=["log", "terminal"])
def test_the_calls_the_package_makes(stream):
    out = stream()
    # segment-bag's frame bar
    bar = progress(total=10, unit="frame", desc="sample", disable=False, dynamic_ncols=True,
                   file=out)
    for _ in range(10):
        bar.update(1)
        if bar.n % 5 == 0:
            bar.set_postfix(model_fps="12.5", queue=1, refresh=False)
    bar.close()
    # the trainer's epoch bar, resumed mid-epoch
    bar = progress(total=8, initial=3, desc="epoch 2/150", dynamic_ncols=True, disable=False,
                   mininterval=30.0, file=out)
    bar.set_postfix(loss="0.1234", img_s="3.0", lr="1.00e-04", refresh=False)
    bar.update(5)
    bar.close()
    # benchmark's timing loops: a range, and a generator with a stated total
    assert len(list(progress(range(4), desc="model", file=out, disable=False, leave=False))) == 4
    gen = (i for i in range(6))
    assert sum(progress(gen, total=6, desc="stream", file=out, leave=False)) == 15
    text = out.getvalue()
    assert "10/10" in text
    if stream is io.StringIO:  # on a terminal tqdm rate-limits and erases leave=False bars
        assert "8/8" in text and "4/4" in text and "6/6" in text
