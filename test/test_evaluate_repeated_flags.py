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

"""`canet evaluate --exclude A --exclude B` leaves out both, as `canet train`'s flags do.

It kept only B: the evaluation silently scored frames meant to be left out (a drive the
model trained on).
"""
import pytest

from canet_ros.cli import build_parser


@pytest.mark.parametrize("flag", ["--include", "--exclude"])
def test_repeated_prefix_flags_add_up(flag):
    args = build_parser().parse_args(["evaluate", flag, "0001TP", flag, "0006R0", "0016E5"])
    assert getattr(args, flag[2:]) == ["0001TP", "0006R0", "0016E5"]


def test_no_flag_is_none_and_a_bare_flag_is_empty():
    args = build_parser().parse_args(["evaluate"])
    assert args.include is None and args.exclude is None
    assert build_parser().parse_args(["evaluate", "--exclude"]).exclude == []
