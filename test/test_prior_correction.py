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

"""Class-prior correction: the classifier-bias shift, its theory, export and evaluation."""
import json
import math

import numpy as np
import pytest
import torch
from test_evaluate import (
    _camvid_tree,
    hand_confusion,
    hand_scores,
    read_tree,
    reference_predictions,
    seeded_model,
)
from torch import nn

from canet_ros.checkpoint import (
    DEFAULT_CHECKPOINT,
    build_metadata,
    read_checkpoint,
    save_checkpoint,
)
from canet_ros.classes import CAMVID
from canet_ros.cli import main as canet_main
from canet_ros.evaluation import evaluate_checkpoint
from canet_ros.prior_correction import PriorCorrectionError, logit_shift, set_prior_correction
from canet_ros.training.export import export_checkpoint
from canet_ros.training.losses import weighted_cross_entropy

# e^0 ... e^10: log weights 0..10, so every shift is a round number by hand.
WEIGHTS = [math.exp(k) for k in range(CAMVID.num_classes)]


def _meta(weights=WEIGHTS) -> dict:
    return build_metadata("mobilenetv2", CAMVID, mean=[0.5] * 3, std=[0.25] * 3,
                          input_size=(48, 36), train_args={"class_weights": weights})


def test_shift_is_strength_times_centred_log_weight():
    # log w = 0, 1, 2 -> centred -1, 0, 1 -> x 0.5
    assert logit_shift([1.0, math.e, math.e ** 2], 0.5).tolist() == pytest.approx(
        [-0.5, 0.0, 0.5], abs=1e-6)


def test_corrected_network_outputs_original_logits_minus_shift():
    model, meta = seeded_model(), _meta()
    x = torch.randn(1, 3, 36, 48)
    with torch.no_grad():
        before = model(x)
    set_prior_correction(model, meta, 0.75)
    with torch.no_grad():
        after = model(x)
    # log w_k = k; its mean over 11 classes is 5
    expected = torch.tensor([0.75 * (k - 5) for k in range(11)]).view(1, 11, 1, 1)
    torch.testing.assert_close(before - after, expected.expand_as(before), atol=1e-4, rtol=0)
    assert meta["prior_correction"] == 0.75


def test_strength_is_a_total_not_a_step():
    a, b = seeded_model(), seeded_model()
    meta_a, meta_b = _meta(), _meta()
    original = a.classifier.bias.detach().clone()
    set_prior_correction(a, meta_a, 0.5)
    assert set_prior_correction(a, meta_a, 0.75) == pytest.approx(0.25)
    set_prior_correction(b, meta_b, 0.75)
    torch.testing.assert_close(a.classifier.bias, b.classifier.bias)
    assert set_prior_correction(a, meta_a, 0.75) == 0.0  # again: nothing changes
    set_prior_correction(a, meta_a, 0.0)
    torch.testing.assert_close(a.classifier.bias, original, atol=1e-6, rtol=0)
    assert "prior_correction" not in meta_a


class _BiasOnly(nn.Module):
    """A classifier whose logits are its bias: the loss's optimum is then closed-form."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.classifier = nn.Conv2d(1, k, 1)
        nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)


def test_strength_one_recovers_class_frequencies_from_weighted_loss():
    """Weighted CE's optimum is softmax = w_c n_c / sum(w n); strength 1 undoes the w_c."""
    counts = np.array([500, 300, 150, 40, 10])
    weights = [1.0 / math.log(1.02 + n / counts.sum()) for n in counts]  # ENet's formula
    labels = torch.from_numpy(np.repeat(np.arange(5), counts)).view(1, 1, -1)
    model = _BiasOnly(5)
    loss_fn = weighted_cross_entropy(weights, ignore_index=255, device=torch.device("cpu"))
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=200, line_search_fn="strong_wolfe")
    x = torch.zeros(1, 1, 1, labels.shape[-1])

    def closure():
        opt.zero_grad()
        loss = loss_fn(model(x), labels)
        loss.backward()
        return loss

    opt.step(closure)
    weighted = counts * np.array(weights)
    probs = torch.softmax(model.classifier.bias.detach(), 0).numpy()
    np.testing.assert_allclose(probs, weighted / weighted.sum(), atol=1e-4)
    set_prior_correction(model, {"num_classes": 5, "train_args": {"class_weights": weights}}, 1.0)
    probs = torch.softmax(model.classifier.bias.detach(), 0).numpy()
    np.testing.assert_allclose(probs, counts / counts.sum(), atol=1e-4)


BAD_WEIGHTS = "train_args.class_weights must hold 11 positive numbers"


@pytest.mark.parametrize("train_args, message", [
    ({}, "trained without class weights"),
    ({"class_weights": None}, "trained without class weights"),
    ({"class_weights": [1.0, 2.0]}, BAD_WEIGHTS),
    ({"class_weights": [1.0] * 10 + [0.0]}, BAD_WEIGHTS),
])
def test_nothing_to_correct_is_a_clear_error(train_args, message):
    meta = build_metadata("mobilenetv2", CAMVID, train_args=train_args)
    with pytest.raises(PriorCorrectionError, match=f"run/best.pt: {message}"):
        set_prior_correction(seeded_model(), meta, 0.5, source="run/best.pt")


@pytest.mark.parametrize("strength", [-0.1, 2.5, float("nan")])
def test_strength_out_of_range(strength):
    with pytest.raises(PriorCorrectionError, match="between 0 and 2"):
        set_prior_correction(seeded_model(), _meta(), strength)


def test_evaluate_scores_the_corrected_argmax(tmp_path):
    root = _camvid_tree(tmp_path / "camvid", frames=3)
    model = seeded_model()
    ckpt = save_checkpoint(tmp_path / "m.pt", model, _meta(), half=False)
    frames, labels = read_tree(root)
    result = evaluate_checkpoint(str(ckpt), "camvid", str(root), "val", prior_correction=0.25)
    with torch.no_grad():  # the expectation: the same network, bias shifted by hand
        model.classifier.bias -= torch.tensor([0.25 * (k - 5) for k in range(11)])
    preds = reference_predictions(model, frames, [0.5] * 3, [0.25] * 3)
    want = hand_scores(hand_confusion(preds, labels, CAMVID.num_classes))
    assert result["miou"] == pytest.approx(want["miou"], abs=1e-12)
    assert result["prior_correction"] == 0.25
    plain = evaluate_checkpoint(str(ckpt), "camvid", str(root), "val")
    assert plain["prior_correction"] == 0.0 and plain["miou"] != result["miou"]


def test_export_bakes_the_correction_in_and_records_it(tmp_path):
    model = seeded_model()
    src = save_checkpoint(tmp_path / "best.pt", model, _meta(), half=False)
    out = export_checkpoint(src, tmp_path / "ship.pt", half=False, prior_correction=1.0)
    blob = read_checkpoint(out)
    assert blob["prior_correction"] == 1.0
    shift = blob["state_dict"]["classifier.bias"] - model.classifier.bias.detach()
    torch.testing.assert_close(shift, -torch.arange(11.0) + 5, atol=1e-5, rtol=0)
    again = read_checkpoint(export_checkpoint(out, tmp_path / "again.pt", half=False))
    torch.testing.assert_close(again["state_dict"]["classifier.bias"],
                               blob["state_dict"]["classifier.bias"])
    assert again["prior_correction"] == 1.0
    # the run's own validation scores were measured without the correction
    assert blob["metrics"]["prior_correction"] == 0.0


def test_cli_export_checkpoint_format(tmp_path, capsys):
    src = save_checkpoint(tmp_path / "best.pt", seeded_model(), _meta(), half=False)
    out = tmp_path / "ship.pt"
    assert canet_main(["export", "--format", "checkpoint", "--checkpoint", str(src), "--out",
                       str(out), "--prior-correction", "0.5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["prior_correction"] == 0.5 and report["precision"] == "fp16"
    blob = read_checkpoint(out)
    assert blob["state_dict"]["classifier.weight"].dtype == torch.float16
    assert blob["prior_correction"] == 0.5


@pytest.mark.parametrize("argv, status, message", [
    (["--format", "checkpoint", "--height", "36", "--width", "48"], 1, "--height, --width: ONNX"),
    (["--prior-correction", "0.5"], 1, "applies to --format checkpoint"),
    (["--format", "checkpoint", "--prior-correction", "3"], 2, "must be between 0 and 2"),
    (["--format", "checkpoint", "--prior-correction", "x"], 2, "'x' is not a number"),
])
def test_cli_export_rejects_mixed_or_bad_options(tmp_path, capsys, argv, status, message):
    src = save_checkpoint(tmp_path / "best.pt", seeded_model(), _meta(), half=False)
    argv = ["export", "--checkpoint", str(src), "--out", str(tmp_path / "o"), *argv]
    try:
        code = canet_main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    assert code == status
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_export_without_class_weights_names_the_file(tmp_path, capsys):
    src = save_checkpoint(tmp_path / "plain.pt", seeded_model(),
                          build_metadata("mobilenetv2", CAMVID), half=False)
    assert canet_main(["export", "--format", "checkpoint", "--checkpoint", str(src),
                       "--out", str(tmp_path / "o.pt"), "--prior-correction", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{src}: trained without class weights" in err
    assert not (tmp_path / "o.pt").exists()


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="bundled model not shipped")
def test_bundled_model_declares_its_correction():
    blob = read_checkpoint("default")
    assert blob["prior_correction"] == 0.75
    assert len(blob["train_args"]["class_weights"]) == blob["num_classes"]


def test_cli_train_checks_the_export_correction_before_training(tmp_path, capsys):
    out_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as usage:
        canet_main(["train", "--export-prior-correction", "2.5", "--out-dir", str(out_dir)])
    assert usage.value.code == 2
    assert "must be between 0 and 2" in capsys.readouterr().err
    assert canet_main(["train", "--class-weighting", "none", "--export", str(tmp_path / "s.pt"),
                       "--export-prior-correction", "0.5", "--out-dir", str(out_dir)]) == 1
    assert "trains without class weights" in capsys.readouterr().err
    assert not out_dir.exists()  # refused before any training or data loading
