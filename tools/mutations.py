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

"""The mutations tools/mutation_check.py applies: one small deliberate bug each."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple


@dataclass(frozen=True)
class Mutation:
    name: str
    files: str  # glob relative to the repository; the first file where the pattern matches
    pattern: str  # regular expression (multiline mode)
    replacement: str  # re.sub replacement; \1 etc. refer to the pattern's groups
    tests: Tuple[str, ...]  # pytest arguments: files, node ids, "-k EXPR"
    bug: str  # what the mutation simulates
    count: int = 1  # matches replaced (0 = all)
    note: str = ""  # shown with the result, e.g. why a survivor is harmless here


def M(name: str, files: str, pattern: str, replacement: str, tests: str, bug: str,
      count: int = 1, note: str = "") -> Mutation:
    return Mutation(name, files, pattern, replacement, tuple(tests.split()), bug, count, note)


T_TRAIN = "test/test_training.py"
T_RESUME = "test/test_training_resume.py"
T_OPTIONS = "test/test_training_options.py"
MUTATIONS: List[Mutation] = [
    # -- checkpoints ---------------------------------------------------------------------
    M("checkpoint_weights_only", "canet_ros/checkpoint.py",
      r"(torch\.load\(\w[^)]*weights_only=)True", r"\1False",
      "test/test_checkpoint_security.py", "checkpoints unpickled with weights_only=False",
      count=0),
    M("backbone_weights_only", "canet_ros/models/backbones.py",
      r"(torch\.load\(\w[^)]*weights_only=)True", r"\1False",
      "test/test_checkpoint_security.py -k backbone",
      "backbone weight files unpickled with weights_only=False"),
    M("format_version_check", "canet_ros/checkpoint_checks.py",
      r"^([ \t]*)if [^\n]*> FORMAT_VERSION:", r"\1if False:",
      "test/test_checkpoint.py", "the checkpoint format-version check removed"),
    M("export_not_half", "canet_ros/training/export.py",
      r"half: bool = True", "half: bool = False",
      "test/test_checkpoint.py -k export", "export_checkpoint ships fp32"),
    # -- training ------------------------------------------------------------------------
    M("resume_epochs_reaim", "canet_ros/training/resume_checks.py",
      r"^([ \t]*)scheduler\.total_steps = [^\n]*$", r"\1pass",
      f"{T_RESUME} -k epochs",
      "a resume with a changed --epochs keeps the old schedule length"),
    M("late_crop_never", "canet_ros/training/trainer.py",
      r"if cfg\.late_crop_size and [^\n]*:", "if False:",
      f"{T_RESUME} -k late", "the late (full-size) crop phase never applied"),
    M("late_crop_off_by_one", "canet_ros/training/trainer.py",
      r"epoch >= (cfg\.epochs - cfg\.late_crop_epochs)", r"epoch > \1",
      f"{T_RESUME} -k late", "the late crop phase starts one epoch late"),
    M("bare_resume_ignores_config", "canet_ros/training/config.py",
      r"saved = check_values\(resumed_run_values\(resume, resumed\), str\(resume\)\) if resume "
      r"else \{\}", "saved = {}",
      f"{T_RESUME} -k bare", "bare `canet train --resume` ignores the run's saved config"),
    M("rng_restore", "canet_ros/training/trainer.py",
      r"^([ \t]*)set_rng_state\(self\.epoch_rng\)", r"\1pass",
      f"{T_TRAIN} -k resume_mid_epoch", "a resume does not restore the RNG state"),
    M("resume_no_replay", "canet_ros/training/trainer.py",
      r"for _ in range\(self\.step_in_epoch\):", "for _ in range(0):",
      f"{T_TRAIN} -k resume_mid_epoch", "a mid-epoch resume does not skip finished batches"),
    M("poly_schedule", "canet_ros/training/schedule.py",
      r"\) \*\* power", ") ** (power + 0.1)",
      f"{T_TRAIN} -k poly", "the poly exponent is off"),
    M("sgd_ignored", "canet_ros/training/trainer.py",
      r'if cfg\.optimizer == "sgd":', "if False:",
      f"{T_OPTIONS} -k sgd", "optimizer: sgd silently trains with Adam"),
    M("class_weighting_none_ignored", "canet_ros/training/data_setup.py",
      r'cfg\.class_weights is None and cfg\.class_weighting == "enet"',
      "cfg.class_weights is None",
      f"{T_OPTIONS} -k cross_entropy", "class_weighting: none still uses ENet weights"),
    M("class_weights_unused", "canet_ros/training/trainer.py",
      r"if self\.data\.class_weights else None", "if False else None",
      f"{T_OPTIONS} -k cross_entropy", "the loss ignores the computed class weights"),
    M("amp_on_cpu", "canet_ros/training/trainer.py",
      r'self\.use_amp = bool\(cfg\.amp\) and self\.device\.type == "cuda"',
      "self.use_amp = bool(cfg.amp)",
      f"{T_OPTIONS} -k amp", "AMP not switched off on the CPU",
      note="equivalent without CUDA: GradScaler and autocast('cuda') switch themselves off; "
           "with CUDA present test_amp_is_a_no_op_on_the_cpu sees the enabled scaler"),
    M("scaler_not_restored", "canet_ros/training/trainer.py",
      r'^([ \t]*)self\.scaler\.load_state_dict\(st\["scaler"\]\)', r"\1pass",
      f"{T_OPTIONS} -k amp_on_cuda", "a resume drops the GradScaler state",
      note="a disabled (CPU) scaler has no state; the CUDA test covers it"),
    # -- data and metrics ----------------------------------------------------------------
    M("iou_formula", "canet_ros/metrics.py",
      r"denom = tp \+ fp \+ fn", "denom = tp + fp",
      "test/test_metrics_classes.py", "IoU without the false negatives"),
    M("merge_drops_unmatched", "canet_ros/metrics.py",
      r"^([ \t]*)self\.unmatched \+= other\.unmatched", r"\1pass",
      "test/test_metrics_classes.py -k merge", "merging confusion matrices loses the misses"),
    M("void_not_ignored", "canet_ros/metrics.py",
      r"keep &= t != self\.ignore_index", "keep &= True",
      "test/test_metrics_classes.py", "void ground truth is scored"),
    M("label_upsampling", "canet_ros/data/transforms.py",
      r"(label = cv2\.resize\(label, [^\n]*)INTER_NEAREST", r"\1INTER_LINEAR",
      "test/test_data.py", "training labels resized bilinearly (invented class ids)"),
    M("flip_image_only", "canet_ros/data/transforms.py",
      r"image, label = image\[:, ::-1\], label\[:, ::-1\]",
      "image, label = image[:, ::-1], label",
      "test/test_data.py", "the flip moves the frame but not its label"),
    M("crop_label_elsewhere", "canet_ros/data/transforms.py",
      r"label\[y:y \+ ch, x:x \+ cw\]", "label[h - ch - y:h - y, x:x + cw]",
      "test/test_data.py", "frame and label cropped at different rows"),
    M("eval_label_resized", "canet_ros/data/transforms.py",
      r"^([ \t]*)(image = cv2\.resize\(image\.astype\(np\.float32\), self\.size,\n"
      r"[ \t]*interpolation=cv2\.INTER_LINEAR\))$",
      r"\1\2\n\1label = cv2.resize(label, self.size, interpolation=cv2.INTER_NEAREST)",
      "test/test_data.py -k eval_transform", "evaluation labels shrunk to the network size"),
    M("train_normalize_bgr", "canet_ros/data/transforms.py",
      r"torch\.from_numpy\(np\.ascontiguousarray\(image\)\)\.permute",
      "torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1])).permute",
      "test/test_data.py test/test_evaluate.py", "normalise() swaps the colour channels"),
    M("eval_align_corners", "canet_ros/evaluation.py",
      r'mode="bilinear", align_corners=False', 'mode="bilinear", align_corners=True',
      "test/test_evaluate.py", "evaluation upsamples logits with align_corners=True"),
    # -- inference engine ----------------------------------------------------------------
    M("engine_align_corners", "canet_ros/inference/*.py",
      r"\(np\.arange\((\w+), dtype=np\.float64\) \+ 0\.5\) \* \((\w+) / \w+\) - 0\.5",
      r"np.arange(\1, dtype=np.float64) * ((\2 - 1) / max(\1 - 1, 1))",
      "test/test_engine.py", "labels upsampled with align_corners=True sample positions"),
    M("device_resize_align_corners", "canet_ros/inference/*.py",
      r'mode="bilinear", align_corners=False', 'mode="bilinear", align_corners=True',
      "test/test_engine.py", "the device path resizes frames with align_corners=True"),
    M("model_align_corners", "canet_ros/models/blocks.py",
      r'mode="bilinear", align_corners=False', 'mode="bilinear", align_corners=True',
      "test/test_models.py test/test_evaluate.py test/test_pretrained.py",
      "the network's own upsampling uses align_corners=True"),
    M("engine_overlay_palette", "canet_ros/inference/postprocess.py",
      r'alpha, order != "rgb", out\[rows\]\)', "alpha, False, out[rows])",
      "test/test_engine.py", "BGR overlays tinted with RGB colours (compiled loops)"),
    M("engine_overlay_palette_numpy", "canet_ros/inference/postprocess.py",
      r'tint = rgb if order == "rgb" and rgb is not None else self\.colour\(order\)',
      'tint = self.colour("rgb")',
      "test/test_engine.py", "BGR overlays tinted with RGB colours (without numba)"),
    M("confidence_scale", "canet_ros/inference/postprocess.py",
      r"np\.float32\(255\) / total", "np.float32(254) / total",
      "test/test_engine.py -k postprocess_functions", "confidence scaled to 254"),
    # -- image codec -----------------------------------------------------------------------
    M("padded_row_stride", "canet_ros/image_codec.py",
      r"strides: tuple\[int, \.\.\.\] = \(step, pixel_bytes\)",
      "strides: tuple[int, ...] = (width * pixel_bytes, pixel_bytes)",
      "test/test_image_codec.py", "rows read ignoring the padding in `step`"),
    M("endianness", "canet_ros/image_codec.py",
      r'">u2" if _field\(msg, "is_bigendian"\) else "<u2"', '"<u2"',
      "test/test_image_codec.py", "is_bigendian ignored"),
    M("size_check", "canet_ros/image_codec.py",
      r"if raw\.size < height \* step:", "if False:",
      "test/test_image_codec.py", "short data buffers not refused"),
    M("bgr_reorder", "canet_ros/image_codec.py",
      r"eight\[:, :, 2::-1\]", "eight[:, :, :3]",
      "test/test_image_codec.py", "BGR input not reordered to RGB"),
    M("yuv_byte_order", "canet_ros/image_codec.py",
      r'"yuv422": \(cv2\.COLOR_YUV2RGB_UYVY, cv2\.COLOR_YUV2BGR_UYVY\)',
      '"yuv422": (cv2.COLOR_YUV2RGB_YUY2, cv2.COLOR_YUV2BGR_YUY2)',
      "test/test_image_codec.py", "ROS yuv422 decoded as YUYV instead of UYVY"),
    M("compressed_rgb_marker", "canet_ros/image_codec.py",
      r'payload_order = "rgb" if [^\n]* else "bgr"', 'payload_order = "bgr"',
      "test/test_image_codec_compressed.py", "'compressed rgb8' payloads read as BGR"),
    M("encode_step", "canet_ros/image_encode.py",
      r"step = shape\[1\] \* \(3 if ndim == 3 else 1\) \* dtype\.itemsize",
      "step = shape[1] * (3 if ndim == 3 else 1)",
      "test/test_image_codec_compressed.py", "mono16 messages written with a byte step"),
    # -- bags ------------------------------------------------------------------------------
    M("header_nanoseconds", "canet_ros/bag/reader.py",
      r"(int\(header\.stamp\.sec\) \* 1_000_000_000) \+ int\(header\.stamp\.nanosec\)", r"\1",
      "test/test_bag_metrics.py", "stamps lose their nanoseconds (ground truth by stamp)"),
    M("header_copy_nanoseconds", "canet_ros/bag/reader.py",
      r"nanosec=int\(header\.stamp\.nanosec\)", "nanosec=0",
      "test/test_bag_formats.py", "output headers lose their nanoseconds"),
    M("bag_overlay_encoding", "canet_ros/bag/*.py",
      r'image_message\(overlay, f"\{order\}8", header\)', 'image_message(overlay, "rgb8", header)',
      "test/test_bag_formats.py", "BGR overlays labelled rgb8 in output bags"),
    M("gt_dir_index_pairing", "canet_ros/bag/groundtruth.py",
      r"self\._by_index\.get\((index|position)\)", r"self._by_index.get(\1 + 1)",
      "test/test_bag_metrics.py", "--gt-dir PNGs paired with the next frame"),
    M("gt_dir_stamp_pairing", "canet_ros/bag/groundtruth.py",
      r"int\(pair\[1\]\) \* 1_000_000_000 \+ int\(pair\[2\]\)",
      "int(pair[1]) * 1_000_000_000 + int(pair[2]) + 1",
      "test/test_bag_metrics.py", "<sec>_<nanosec>.png names matched to the wrong stamp"),
    # -- ROS node --------------------------------------------------------------------------
    M("node_channel_order", "canet_ros/ros/*.py",
      r"self\._engine\.infer\(frame, order,", 'self._engine.infer(frame, "rgb",',
      "test/test_node.py", "the node passes 'rgb' instead of the message's channel order"),
    M("node_overlay_encoding", "canet_ros/ros/*.py",
      r'"bgr8" if order == "bgr" else "rgb8"', '"rgb8"',
      "test/test_node.py", "the node labels BGR overlays rgb8"),
    # -- held-out selection, EMA, TTA, the decoder ---------------------------------------
    M("holdout_not_excluded", "canet_ros/training/data_setup.py",
      r"exclude = list\(cfg\.train_exclude\) \+ \(\[cfg\.holdout\] if cfg\.holdout else \[\]\)",
      "exclude = list(cfg.train_exclude)",
      "test/test_training_holdout.py -k holdout_removes",
      "the held-out drive is also trained on"),
    M("ema_no_warmup", "canet_ros/training/ema.py",
      r"return min\(self\.decay, \(1\.0 \+ updates\) / \(10\.0 \+ updates\)\)",
      "return self.decay", "test/test_training_holdout.py -k ema_follows",
      "EMA without its warm-up"),
    M("eval_tta_no_flip_back", "canet_ros/evaluation.py",
      r"if flipped:\n(\s+)logits = logits\.flip\(-1\)", r"if flipped:\n\1pass",
      "test/test_training_holdout.py -k flip_tta", "the mirrored prediction is not flipped back"),
    M("engine_tta_no_flip_back", "canet_ros/inference/postprocess.py",
      r"_softmax\(mirrored\[\.\.\., ::-1\]\)", "_softmax(mirrored)",
      "test/test_engine_tta.py", "the engine's mirrored logits are not flipped back"),
    M("deconv_crop_offset", "canet_ros/models/blocks.py",
      r"\[\.\.\., : size\[0\], : size\[1\]\]", "[..., -size[0]:, -size[1]:]",
      "test/test_deconv.py", "the decoder crops the wrong end of the even-size result"),
    # -- bugs the suite missed or caught only by accident (each has a test of its own) -----
    M("node_stamp_age_nanoseconds", "canet_ros/ros/*.py",
      r"(stamp_ns = header\.stamp\.sec \* 1_000_000_000) \+ header\.stamp\.nanosec", r"\1",
      "test/test_node_stamp_age_qos.py -k stamp_age",
      "the node's stamp-to-publish age drops the stamp's nanoseconds"),
    M("node_input_transient_local", "canet_ros/ros/*.py",
      r"(reliability=policy,\s*durability=DurabilityPolicy\.)VOLATILE", r"\1TRANSIENT_LOCAL",
      "test/test_node_stamp_age_qos.py -k volatile",
      "the input subscription asks for TRANSIENT_LOCAL (no volatile camera matches it)"),
    M("gt_duplicate_last_wins", "canet_ros/bag/groundtruth.py",
      r"if stamp in self\._by_stamp:", "if False:",
      "test/test_bag_accounting.py -k duplicate",
      "of two ground-truth messages with one stamp the last wins (documented: the first)"),
    M("complete_ignores_lost", "canet_ros/bag/report.py",
      r"(stats\.frames_total)\s*\n\s*and job\.get\(\"frames_lost\", 0\) == 0\)", r"\1)",
      "test/test_bag_accounting.py -k complete",
      "`complete` true although frames were lost or the loss is unknown"),
    M("ros1_index_drops_last", "canet_ros/bag/**/*.py",
      r"range\(0, len\(data\) - 11, 12\)", "range(0, len(data) - 12, 12)",
      "test/test_bag_accounting.py -k lost_counts",
      "the ROS 1 salvage's index-data loop drops its last entry (lost count one short)"),
    M("ema_before_step", "canet_ros/training/trainer.py",
      r"^([ \t]*)(self\.scaler\.step\(self\.optimizer\)\n(?:.*\n)*?)"
      r"([ \t]*if self\.ema is not None:\n[ \t]*self\.ema\.update\(self\.bare_model\)\n)",
      r"\3\1\2",
      "test/test_training_ema_best.py -k ema", "the trainer updates the EMA before the step"),
    M("resume_forgets_best", "canet_ros/training/trainer.py",
      r"^([ \t]*)self\.best_score = float\(st\[\"best_score\"\]\)", r"\1pass",
      "test/test_training_ema_best.py -k best",
      "a resume forgets the best score: its first validation overwrites best.pt"),
    M("checkpoint_not_strict", "canet_ros/checkpoint.py",
      r"model\.load_state_dict\(state, strict=True\)", "model.load_state_dict(state, strict=False)",
      "test/test_checkpoint_strict.py", "weights load with strict=False (missing/extra keys)"),
    M("network_output_size_swapped", "canet_ros/inference/engine.py",
      r"(if self\.output_size == \"input\" else )\(height, width\)", r"\1(width, height)",
      "test/test_engine_network_size.py", "output_size=\"network\" gives (W, H) for (H, W)"),
    M("jpeg_truncation_unchecked", "canet_ros/image_codec.py",
      r'if not raw\.tobytes\(\)\.rstrip\(b"\\x00\\xff"\)\.endswith\(_JPEG_EOI\):', "if False:",
      "test/test_image_codec_truncated.py",
      "a JPEG without its end-of-image marker is passed to OpenCV"),
]
