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

"""The decoder's transposed convolution lands on odd and even sizes exactly."""
import torch
from torch import nn

from canet_ros.models.blocks import Deconv


def test_crop_equals_output_size_for_odd_and_even_targets():
    torch.manual_seed(0)
    block = Deconv(4, 3).eval()
    x = torch.randn(2, 4, 5, 7)
    # The reference: the same weights through torch's output_size, which picks the
    # output padding per call (0 for 2n-1, 1 for 2n).
    ref = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, bias=False)
    ref.weight.data.copy_(block.deconv.weight.data)
    with torch.no_grad():
        for size in ((10, 14), (9, 13), (10, 13), (9, 14)):
            expected = block.relu(block.bn(ref(x, output_size=list(size))))
            got = block(x, size)
            assert got.shape[-2:] == size
            assert torch.allclose(got, expected, atol=1e-6), size
