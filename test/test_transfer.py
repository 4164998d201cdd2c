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

"""Class transfer for fine-tuning onto new classes, frozen layers and replay draws."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from canet_ros.classes import ClassSet
from canet_ros.data import SegmentationDataset
from canet_ros.errors import DatasetError
from canet_ros.models import build_canet
from canet_ros.training.replay import MixedDataset, ReplaySampler, replay_per_epoch
from canet_ros.training.transfer import (
    adapt_model,
    freeze_layers,
    label_lut,
    load_class_map,
    plan_transfer,
    transfer_classifier,
)

OLD = ["Sky", "Building", "Road", "Car", "Bicyclist"]


def test_plan_matches_names_case_insensitively_and_maps_merges():
    plan = plan_transfer(OLD, ["road", "vehicle", "person", "sky"],
                         {"vehicle": ["Car", "Bicyclist"]})
    assert plan.sources == [[2], [3, 4], [], [0]]
    assert plan.describe() == "road, vehicle <- Car+Bicyclist, person (new), sky"


def test_plan_rejects_unknown_names_in_the_map():
    with pytest.raises(DatasetError, match="Truck"):
        plan_transfer(OLD, ["vehicle"], {"vehicle": ["Car", "Truck"]})
    with pytest.raises(DatasetError, match="lorry"):
        plan_transfer(OLD, ["vehicle"], {"lorry": ["Car"]})


def test_plan_prefers_exact_spelling_and_refuses_a_shared_loose_name():
    old = ["Road", "road", "Car"]
    # Exact spellings pick their own class, whichever comes last.
    assert plan_transfer(old, ["road", "Road"]).sources == [[1], [0]]
    assert plan_transfer(old, ["veh"], {"veh": ["Car", "Road"]}).sources == [[2, 0]]
    # A loose name that fits two old classes is a guess either way.
    with pytest.raises(DatasetError, match="'ROAD' matches .*'Road' and 'road'"):
        plan_transfer(old, ["ROAD"])
    with pytest.raises(DatasetError, match="'ROAD' matches .*'Road' and 'road'.*exactly"):
        plan_transfer(old, ["veh"], {"veh": ["ROAD"]})
    # ... and so is a map key that fits two new classes.
    with pytest.raises(DatasetError, match="'STREET' matches the new classes"):
        plan_transfer(["Road"], ["street", "Street"], {"STREET": ["Road"]})


def test_plan_refuses_two_map_entries_for_one_class_and_counts_a_source_once():
    with pytest.raises(DatasetError, match="'street' and 'Street' both name"):
        plan_transfer(OLD, ["street"], {"street": ["Road"], "Street": ["Car"]})
    assert plan_transfer(OLD, ["vehicle"], {"vehicle": ["Car", "car", "Car"]}).sources == [[3]]


def test_class_map_file(tmp_path):
    f = tmp_path / "map.yaml"
    f.write_text("vehicle: [Car, Bicyclist]\nstreet: Road\n")
    assert load_class_map(f) == {"vehicle": ["Car", "Bicyclist"], "street": ["Road"]}
    f.write_text("vehicle: 3\n")
    with pytest.raises(DatasetError, match="map.yaml.*vehicle"):
        load_class_map(f)
    with pytest.raises(DatasetError, match="missing.yaml"):
        load_class_map(tmp_path / "missing.yaml")


def test_classifier_rows_copied_merged_and_fresh():
    torch.manual_seed(0)
    old, new = nn.Conv2d(4, 5, 1).requires_grad_(False), nn.Conv2d(4, 3, 1).requires_grad_(False)
    fresh_w, fresh_b = new.weight[2].clone(), new.bias[2].clone()
    plan = plan_transfer(OLD, ["Road", "vehicle", "person"], {"vehicle": ["Car", "Bicyclist"]})
    transfer_classifier(old, new, plan)
    assert torch.equal(new.weight[0], old.weight[2]) and new.bias[0] == old.bias[2]
    # Merge by hand: mean of the weights, log(e^b3 + e^b4) for the bias.
    assert torch.allclose(new.weight[1], (old.weight[3] + old.weight[4]) / 2)
    b3, b4 = float(old.bias[3]), float(old.bias[4])
    assert math.isclose(float(new.bias[1]), math.log(math.exp(b3) + math.exp(b4)), rel_tol=1e-6)
    assert torch.equal(new.weight[2], fresh_w) and torch.equal(new.bias[2], fresh_b)


def test_adapted_model_keeps_the_old_scores_of_shared_classes():
    torch.manual_seed(0)
    old = build_canet("mobilenetv2", 5).eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        before = old(x)
    plan = plan_transfer(OLD, ["Car", "Sky", "person"])
    model = adapt_model(old, plan).eval()
    with torch.no_grad():
        after = model(x)
    assert after.shape == (1, 3, 64, 96) and model.num_classes == 3
    assert torch.allclose(after[:, 0], before[:, 3], atol=1e-5)
    assert torch.allclose(after[:, 1], before[:, 0], atol=1e-5)


def test_label_lut_maps_old_ids_and_ignores_unused_classes():
    plan = plan_transfer(OLD, ["Road", "vehicle"], {"vehicle": ["Car", "Bicyclist"]})
    lut = label_lut(plan, old_ignore=11, new_ignore=255)
    labels = np.array([0, 1, 2, 3, 4, 11], dtype=np.uint8)
    assert lut[labels].tolist() == [255, 255, 0, 1, 1, 255]


def test_label_lut_ignores_an_old_class_two_new_classes_draw_from():
    plan = plan_transfer(OLD, ["car", "vehicle", "sky"], {"vehicle": ["Car", "Bicyclist"]})
    assert plan.sources == [[3], [3, 4], [0]]  # both rows start from Car's
    lut = label_lut(plan, old_ignore=11, new_ignore=255)
    # A replayed Car pixel is a car or a vehicle: unknown, so ignored; Bicyclist is vehicle.
    assert (lut[0], lut[3], lut[4], lut[1], lut[11]) == (2, 255, 1, 255, 255)


def _bn_state(module):
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k}


@pytest.mark.parametrize("layers,frozen", [("decoder", ["context"]),
                                           ("head", ["context", "spatial"])])
def test_frozen_layers_do_not_change_and_keep_their_statistics(layers, frozen):
    torch.manual_seed(0)
    model = build_canet("mobilenetv2", 3)
    assert freeze_layers(model, layers) == frozen
    before = {n: _bn_state(getattr(model, n)) | {k: v.clone() for k, v in
              getattr(model, n).named_parameters()} for n in frozen}
    head_before = model.classifier.weight.clone()
    model.train()
    assert not any(m.training for n in frozen for m in getattr(model, n).modules())
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    loss = nn.functional.cross_entropy(model(torch.rand(2, 3, 64, 64)),
                                       torch.randint(0, 3, (2, 64, 64)))
    loss.backward()
    opt.step()
    for n in frozen:
        now = _bn_state(getattr(model, n)) | dict(getattr(model, n).named_parameters())
        assert all(torch.equal(before[n][k], now[k]) for k in before[n]), n
    assert not torch.equal(head_before, model.classifier.weight)


def test_freeze_rejects_unknown_choice():
    with pytest.raises(ValueError, match="train_layers"):
        freeze_layers(build_canet("mobilenetv2", 3), "backbone")


def _epochs(sampler, n):
    return [list(sampler) for _ in range(n)]


def test_replay_sampler_takes_every_own_frame_and_fresh_originals_each_epoch():
    torch.manual_seed(0)
    sampler = ReplaySampler(own=4, pool=30, per_epoch=4)
    epochs = _epochs(sampler, 20)
    for order in epochs:
        assert len(order) == len(sampler) == 8
        assert sorted(i for i in order if i < 4) == [0, 1, 2, 3]  # each own frame once
        drawn = [i for i in order if i >= 4]
        assert len(drawn) == len(set(drawn)) == 4 and all(4 <= i < 34 for i in drawn)
    # Drawn afresh: 20 epochs of 4 draws from 30 frames reach most of them, not one fixed 4.
    assert len({i for order in epochs for i in order if i >= 4}) >= 25
    # The draws follow torch's global generator: the same seed, the same epochs.
    torch.manual_seed(0)
    assert _epochs(sampler, 20) == epochs


def test_replay_sampler_tops_up_to_a_batch_and_splits_ranks():
    torch.manual_seed(1)
    small = list(ReplaySampler(own=2, pool=3, per_epoch=2, min_len=8))
    assert len(small) == 8 and {0, 1} <= set(small) and all(0 <= i < 5 for i in small)
    state = torch.get_rng_state()
    ranks = []
    for rank in range(2):
        torch.set_rng_state(state)
        ranks.append(list(ReplaySampler(own=6, pool=10, per_epoch=6, rank=rank, world=2)))
    assert len(ranks[0]) == len(ranks[1]) == 6 and not set(ranks[0]) & set(ranks[1])
    assert sorted(i for r in ranks for i in r if i < 6) == list(range(6))


def test_replay_per_epoch_is_the_ratio_capped_by_the_set():
    assert replay_per_epoch(20, 300, 1.0) == 20
    assert replay_per_epoch(20, 300, 2.5) == 50
    assert replay_per_epoch(20, 30, 2.0) == 30
    assert replay_per_epoch(20, 300, 0.0) == 0


class _Masks(SegmentationDataset):
    """Frames that are only their label masks, for counting."""

    def __init__(self, masks):
        super().__init__([(f"i{n}", f"m{n}") for n in range(len(masks))])
        self.masks = masks

    def load(self, index):
        return np.zeros((*self.masks[index].shape, 3), np.uint8), self.masks[index]


def test_class_weights_count_replayed_frames_by_how_often_they_are_drawn():
    from canet_ros.training.data_setup import _pixel_counts

    own = _Masks([np.array([[0, 0, 1, 255]], np.uint8)])  # class 0: 2 px, class 1: 1 px
    pool = _Masks([np.array([[2, 2, 2, 2]], np.uint8)] * 4)  # 16 px of class 2 in all
    mixed = MixedDataset([own, pool], [None, None])
    mixed.per_epoch = 1  # one of the four pool frames an epoch: a quarter of their pixels
    cs = ClassSet("t", ("a", "b", "c"), ((0, 0, 0),) * 3, 255)
    np.testing.assert_allclose(_pixel_counts(mixed, cs), [2, 1, 4])
    np.testing.assert_allclose(_pixel_counts(own, cs), [2, 1, 0])
