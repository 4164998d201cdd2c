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

"""Recipe options that must reach the run, not only the config: poly_power and enet_c.

The pure functions (``poly_factor``, ``enet_class_weights``) are tested elsewhere; here a
non-default value goes through ``Trainer`` and what it uses is compared with the formula
worked out by hand: the learning rate logged after each epoch of a real fit, and the
loss's class weights from pixel counts read straight off the label PNGs.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from test_training import make_camvid_tree, tiny_config
from test_training_resume import log_rows

from canet_ros.classes import CAMVID
from canet_ros.training.trainer import Trainer


def test_poly_power_shapes_the_logged_learning_rate(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid", frames=4)
    cfg = tiny_config(root, tmp_path / "run", epochs=4, batch_size=2, lr=1e-3,
                      poly_power=3.0, val_every=4, device="cpu")
    Trainer(cfg).fit()
    rows = log_rows(tmp_path / "run")
    # 4 frames in batches of 2: 2 steps an epoch, N = 8 in all. Step k trains with
    # 1e-3 * (1 - (k - 1)/8) ** 3, and a row shows its epoch's last step (k = 2, 4, 6, 8):
    # 0.875 ** 3 = 0.669921875, 0.625 ** 3 = 0.244140625, 0.375 ** 3 = 0.052734375,
    # 0.125 ** 3 = 0.001953125.
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8]
    want = [6.69921875e-4, 2.44140625e-4, 5.2734375e-5, 1.953125e-6]
    assert [float(r["lr"]) for r in rows] == pytest.approx(want, rel=1e-9, abs=1e-15)


def test_enet_c_sets_the_loss_weights(tmp_path):
    root = make_camvid_tree(tmp_path / "camvid", frames=4)
    cfg = tiny_config(root, tmp_path / "run", class_weighting="enet", enet_c=1.5,
                      device="cpu")
    trainer = Trainer(cfg)
    # Pixels per class over the training split's label images; 11 (void) is not a class.
    counts = np.zeros(CAMVID.num_classes, np.int64)
    files = sorted((root / "trainannot").glob("*.png"))
    assert len(files) == 4
    for path in files:
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        counts += np.bincount(label.ravel(), minlength=12)[: CAMVID.num_classes]
    share = counts / counts.sum()
    want = [1.0 / math.log(1.5 + p) for p in share]  # ENet: w_k = 1 / ln(c + p_k)
    got = trainer.criterion.weight.cpu().numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    # A class absent from the frames weighs 1 / ln(1.5) = 2.466303 (1 / ln(1.02) = 50.50).
    assert (counts == 0).any()
    np.testing.assert_allclose(got[counts == 0], 2.466303, rtol=0, atol=2e-6)
