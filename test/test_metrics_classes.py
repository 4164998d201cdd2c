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

"""Confusion-matrix metrics against hand-computed values; class sets."""
import math

import numpy as np
import pytest

from canet_ros.classes import CAMVID, CITYSCAPES, get_class_set
from canet_ros.metrics import ConfusionMatrix


def test_iou_by_hand():
    # classes 0,1,2; ignore 9
    gt = np.array([[0, 0, 1, 1], [2, 2, 9, 9]])
    pr = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = ConfusionMatrix(3, ignore_index=9)
    cm.update(pr, gt)
    # class 0: TP1 FP1(gt2->0) FN1(gt0->1) -> 1/3 ; class 1: TP2 FP1 FN0 -> 2/3
    # class 2: TP1 FP0 FN1 -> 1/2
    assert np.allclose(cm.iou(), [1 / 3, 2 / 3, 1 / 2])
    assert math.isclose(cm.miou(), (1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert math.isclose(cm.global_accuracy(), 4 / 6)
    s = cm.summary(["a", "b", "c"])
    assert s["pixels"] == 6 and set(s["per_class"]) == {"a", "b", "c"}


def test_absent_class_left_out_of_mean():
    cm = ConfusionMatrix(4, ignore_index=None)
    cm.update(np.array([0, 1, 1]), np.array([0, 1, 0]))
    iou = cm.iou()
    assert np.isnan(iou[2]) and np.isnan(iou[3])
    assert math.isclose(cm.miou(), (1 / 2 + 1 / 2) / 2)
    assert set(cm.summary("abcd")["per_class"]) == {"a", "b"}


def test_out_of_range_prediction_is_a_false_negative():
    cm = ConfusionMatrix(2, ignore_index=255)
    cm.update(np.array([0, 7, 1]), np.array([0, 0, 255]))
    assert math.isclose(cm.iou()[0], 1 / 2)
    assert math.isclose(cm.global_accuracy(), 1 / 2)


def test_merge_equals_single_pass():
    rng = np.random.default_rng(0)
    # Truth 0-4: 3 is void, 4 out of range. Predictions 4 and 5 are no class (misses).
    gt, pr = rng.integers(0, 5, (2, 60)), rng.integers(0, 6, (2, 60))
    a, b, ab = (ConfusionMatrix(4, 3) for _ in range(3))
    a.update(pr[0], gt[0])
    b.update(pr[1], gt[1])
    ab.update(pr, gt)
    a.merge(b)
    assert np.array_equal(a.matrix, ab.matrix)
    # The merged object scores like the single pass, misses included; and by hand:
    keep = (gt != 3) & (gt < 4)
    t, p = gt[keep], pr[keep]
    assert (p >= 4).any()  # the out-of-range case is really exercised
    for c in range(4):  # 3 is void in the truth but still a class one can predict
        tp = int(((t == c) & (p == c)).sum())
        union = int(((t == c) | (p == c)).sum())
        assert union > 0 and a.iou()[c] == pytest.approx(tp / union)
    assert a.miou() == pytest.approx(ab.miou())
    assert a.global_accuracy() == pytest.approx((t == p).mean())
    assert a.summary("abcd") == ab.summary("abcd")


def test_uint8_label_images_count_as_by_hand():
    gt = np.array([[0, 0, 1, 1], [2, 2, 9, 200]], dtype=np.uint8)
    pr = np.array([[0, 1, 1, 255], [2, 0, 2, 0]], dtype=np.uint8)
    cm = ConfusionMatrix(3, ignore_index=9)
    cm.update(pr, gt)
    # Truth 9 is void and 200 no class: both skipped. Prediction 255 is no class: a miss.
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert cm.unmatched.tolist() == [0, 1, 0]


@pytest.mark.parametrize("n, ignore", [(11, 11), (11, None), (19, 255), (2, 0), (256, 7),
                                       (300, 299)])
def test_uint8_labels_score_as_wider_integers(n, ignore):
    rng = np.random.default_rng(n)
    gt = rng.integers(0, 256, (2, 31, 47)).astype(np.uint8)
    pr = rng.integers(0, 256, (2, 31, 47)).astype(np.uint8)
    inside = rng.random(gt.shape) < 0.7  # mostly real classes, as in a label image
    gt[inside] = rng.integers(0, min(n, 256), int(inside.sum()))
    pr[inside] = rng.integers(0, min(n, 256), int(inside.sum()))
    narrow, wide = ConfusionMatrix(n, ignore), ConfusionMatrix(n, ignore)
    for k in range(2):  # two frames: counts accumulate
        narrow.update(pr[k], gt[k])
        wide.update(pr[k].astype(np.int64), gt[k].astype(np.int64))
    assert narrow.matrix.sum() > 0 and (narrow.unmatched.sum() > 0) == (n < 256)
    assert np.array_equal(narrow.matrix, wide.matrix)
    assert np.array_equal(narrow.unmatched, wide.unmatched)


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix(2).update(np.zeros((2, 2)), np.zeros((2, 3)))


def test_class_sets():
    assert CAMVID.num_classes == 11 and CAMVID.ignore_index == 11
    assert CAMVID.palette().shape == (11, 3) and CAMVID.palette().dtype == np.uint8
    assert CITYSCAPES.num_classes == 19 and CITYSCAPES.ignore_index == 255
    assert get_class_set("cityscapes") is CITYSCAPES
    with pytest.raises(ValueError, match="unknown class set"):
        get_class_set("kitti")


def test_cityscapes_names_and_colours_match_official_definitions():
    labels = pytest.importorskip("cityscapesscripts.helpers.labels",
                                 reason="cityscapesscripts not installed")
    official = sorted((lb.trainId, lb.name, lb.color) for lb in labels.labels
                      if 0 <= lb.trainId < 255)
    assert [n for _, n, _ in official] == list(CITYSCAPES.names)
    assert [tuple(c) for _, _, c in official] == list(CITYSCAPES.colors)
