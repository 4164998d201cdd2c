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

"""compressed_to_array(order="mono") weighs each colour by what it is, whatever the payload order.

docs/image_codec.md: a format string with ``compressed rgb...`` means the decoded buffer is
RGB (image_transport encodes the RGB array as is), and colour goes to grey with BT.601
weights, Y = 0.299 R + 0.587 G + 0.114 B. By hand, for one full channel of 255:
red 76.245 -> 76, green 149.685 -> 150, blue 29.07 -> 29.
"""
import types

import cv2
import numpy as np
import pytest

from canet_ros.image_codec import compressed_to_array

# RGB colour -> BT.601 grey, rounded (hand values above)
GREY = [pytest.param((255, 0, 0), 76, id="red"), pytest.param((0, 255, 0), 150, id="green"),
        pytest.param((0, 0, 255), 29, id="blue")]


def png_message(fmt: str, array: np.ndarray) -> types.SimpleNamespace:
    ok, buf = cv2.imencode(".png", array)  # the array's bytes as they are, as image_transport does
    assert ok
    return types.SimpleNamespace(header="hdr", format=fmt, data=buf.tobytes())


def two_by_two(colour) -> np.ndarray:
    image = np.zeros((2, 2, 3), np.uint8)
    image[:] = colour
    return image


@pytest.mark.parametrize("rgb, grey", GREY)
@pytest.mark.parametrize("fmt", ["rgb8; png compressed rgb8", "bgr8; png compressed bgr8"],
                         ids=["rgb_payload", "bgr_payload"])
def test_mono_of_a_pure_colour(fmt, rgb, grey):
    payload_is_rgb = "compressed rgb" in fmt
    payload = two_by_two(rgb if payload_is_rgb else rgb[::-1])
    msg = png_message(fmt, payload)
    # The colour itself comes back as it is, so the payload order was read as documented.
    np.testing.assert_array_equal(compressed_to_array(msg, "rgb"), two_by_two(rgb))
    mono = compressed_to_array(msg, "mono")
    assert mono.shape == (2, 2) and mono.dtype == np.uint8
    np.testing.assert_array_equal(mono, np.full((2, 2), grey, np.uint8))


def test_mono_of_a_mixed_colour_rgb_payload():
    # RGB (200, 100, 50): 0.299*200 + 0.587*100 + 0.114*50 = 59.8 + 58.7 + 5.7 = 124.2 -> 124
    # (read as BGR it would be 0.299*50 + 0.587*100 + 0.114*200 = 96.45 -> 96)
    msg = png_message("rgb8; png compressed rgb8", two_by_two((200, 100, 50)))
    np.testing.assert_array_equal(compressed_to_array(msg, "mono"), np.full((2, 2), 124))
