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

"""A frame's header stamp against the node's clock: a latency, or a clock problem.

The stamp->publish latency is the node's clock at publish minus the frame's stamp. A
camera whose clock is not synchronised with the host (an hour off, or counting from its
own boot), or a bag played on wall time, gives "ages" of an hour or of 55 years, or
negative ones; put in the latency percentiles they read as a node 3600 s late. Ages
outside [-STAMP_AHEAD_TOLERANCE_S, STAMP_MAX_AGE_S] are therefore counted
(``stamp_out_of_range``) and warned about instead of sampled.
"""
from __future__ import annotations

from typing import Optional, Tuple

# Stamps a little ahead of the clock are normal: hosts synchronised by NTP differ by
# milliseconds, and a bag's /clock (use_sim_time) steps by 1/(rate x clock Hz), 250 ms at
# --clock 40 and rate 10.
STAMP_AHEAD_TOLERANCE_S = 1.0
# No real frame waits this long: the node keeps only the newest frame, so an age is the
# transport plus at most two inferences (seconds for resnet101 on a small CPU).
STAMP_MAX_AGE_S = 30.0
# How often the warning may repeat while the stamps stay off (as input_watch's REPEAT_S).
STAMP_WARN_REPEAT_S = 60.0
# A stamp before 2001-09-09 is no wall-clock time: a device counting since it booted.
_EPOCH_LIKE_NS = 1_000_000_000 * 1_000_000_000

UNSTAMPED, NO_CLOCK, IN_RANGE, OUT_OF_RANGE = "unstamped", "no clock", "in range", "out of range"


def stamp_age(stamp_ns: int, now_ns: int) -> Tuple[str, Optional[float]]:
    """Classify a frame's age (seconds, now - stamp) and return it where there is one.

    ``now_ns`` 0: use_sim_time before /clock arrived, no age to tell.
    """
    if stamp_ns <= 0:
        return UNSTAMPED, None
    if now_ns <= 0:
        return NO_CLOCK, None
    age = (now_ns - stamp_ns) / 1e9
    if age < -STAMP_AHEAD_TOLERANCE_S or age > STAMP_MAX_AGE_S:
        return OUT_OF_RANGE, age
    return IN_RANGE, age


def out_of_range_warning(age_s: float, stamp_ns: int, sim_time: bool) -> str:
    """Say how far off the stamps are, that they are left out, and the likely cause."""
    side = "behind" if age_s > 0 else "ahead of"
    clock = "the simulated clock (use_sim_time: true, from /clock)" if sim_time else \
        "this node's clock"
    text = f"header stamps are {abs(age_s):.1f} s {side} {clock}"
    if 0 < stamp_ns < _EPOCH_LIKE_NS:
        text += (f" (they read {stamp_ns / 1e9:.1f} s after 1970: likely the camera's time "
                 "since it booted; have its driver stamp with ROS time)")
    text += ("; such frames are left out of the stamp->publish latency and counted as "
             "stamp_out_of_range: ")
    if sim_time:
        return text + ("a live camera, or a bag whose stamps are not on the played /clock, "
                       "is not on this clock; use_sim_time:=false for a live camera")
    return text + ("is the camera's clock synchronised with this host (chrony, PTP)? A bag "
                   "played without --clock carries its recording's stamps: play it with "
                   "--clock and start the node with use_sim_time:=true")
