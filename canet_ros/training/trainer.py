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

"""The training loop behind ``canet train``.

Resumable at any step: a checkpoint holds the epoch, its steps done, its starting RNG state
and optimiser/scheduler/scaler state; resuming restores the RNG, rebuilds the loader and skips
the done batches (same shuffle and augmentation draws): N steps = N/2 + resume + N/2.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from ..checkpoint import build_metadata, read_checkpoint, save_checkpoint
from ..models import build_canet
from ..models.backbones import load_backbone_weights
from ..progress import progress
from . import distributed as D
from .amp import grad_scaler
from .config import TrainConfig, portable_train_args
from .crop_check import check_crop
from .data_setup import DataBundle, build_data, resolve_backbone
from .devices import resolve_device
from .divergence import check_run, diverged, labelled_loss
from .ema import ModelEMA
from .epoch_stats import EpochStats
from .lineage import holdout_warning, run_lineage
from .mixing import cutmix, step_generator
from .replay import MixedDataset, ReplaySampler
from .resume_checks import check_backbone, check_classes, check_resume, restore_schedule
from .run_folder import prepare_run_folder, rank_rng, train_state
from .runlog import RunLog
from .schedule import PolyLR, build_optimizer
from .state import get_rng_state, seed_everything, set_rng_state
from .step_plan import epoch_steps, plan_run
from .stop import StopFlag
from .transfer import fit_frames, freeze_layers, initial_model
from .validate import better, logged_validation, selection_score
from .workers import StopSafeLoader, stoppable


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(cfg.device, local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        # Read once and refused here, before the data set loads and fit() writes config.yaml
        # and the logs: a wrong --resume file must leave the run folder as it was.
        self._resume_blob: Optional[Dict[str, Any]] = None
        if cfg.resume:
            # On the CPU: the saved RNG states must stay CPU tensors (torch.set_rng_state
            # refuses a CUDA one); load_state_dict copies the rest onto the model's device.
            self._resume_blob = read_checkpoint(cfg.resume, map_location="cpu")
            train_state(self._resume_blob, cfg.resume)
            check_backbone(self._resume_blob, cfg.resume, cfg.backbone)
        # ImageNet weights are read (and a missing or wrong file refused) before the data
        # loads; a resume or --init-weights checkpoint brings every weight itself.
        self._backbone_state = None if cfg.resume or cfg.init_weights else \
            load_backbone_weights(resolve_backbone(cfg), cfg.pretrained_backbone)
        check_crop(cfg, resolve_backbone(cfg))  # one line before the data loads, not torch's
        self.dist = D.init_distributed(self.device)
        note = check_resume(self._resume_blob, cfg, self.dist.world_size)
        if note and self.dist.is_main:
            logging.getLogger("canet_ros.training").warning(note)
        self.run_dir = Path(cfg.out_dir)
        self.use_amp = bool(cfg.amp) and self.device.type == "cuda"
        # Per rank, so ranks draw their own augmentation (DDP copies rank 0's weights).
        seed_everything(cfg.seed + self.dist.rank)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.data: DataBundle = build_data(cfg, self.dist.is_main)
        check_classes(self._resume_blob, cfg.resume, self.data.class_set)  # another data_root's
        self.lineage = run_lineage(cfg, self.data, self.run_dir, self._resume_blob)
        self._print(holdout_warning(cfg, self.data, self.lineage, self.run_dir) or "")
        self.loader = self._train_loader()
        self.steps_per_epoch = len(self.loader)
        if self.steps_per_epoch == 0:
            raise ValueError(f"training set has {len(self.data.train)} frames, fewer than one "
                             f"batch of {cfg.batch_size} per process")
        st = (self._resume_blob or {}).get("train_state")  # earlier epochs may be short
        self.total_steps, cfg.epochs = plan_run(cfg.steps, cfg.epochs, self.steps_per_epoch, st)
        self.model = self._build_model()
        self.ema = ModelEMA(self.bare_model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = PolyLR(self.optimizer, self.total_steps, cfg.poly_power)
        self.scaler = grad_scaler(self.use_amp)
        self.criterion = nn.CrossEntropyLoss(
            weight=torch.tensor(self.data.class_weights, dtype=torch.float32,
                                device=self.device) if self.data.class_weights else None,
            ignore_index=self.data.class_set.ignore_index)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_score = -math.inf
        self.best_metrics: Dict[str, Any] = {}
        self.epoch_rng: Optional[Dict[str, Any]] = None
        self._epoch_stats: Optional[EpochStats] = None  # None between epochs

    # -- construction -------------------------------------------------------------------
    def _train_loader(self) -> DataLoader:
        cfg = self.cfg
        train = self.data.train
        sampler = (DistributedSampler(self.data.train, shuffle=True, seed=cfg.seed,
                                      drop_last=True) if self.dist.enabled else None)
        if isinstance(train, MixedDataset) and train.per_epoch is not None:
            sampler = D.RankZeroOrder(
                ReplaySampler(train.count(0), train.count(1), train.per_epoch,
                              cfg.batch_size * self.dist.world_size,
                              self.dist.rank, self.dist.world_size), self.dist, self.device)
        elif sampler is None and len(self.data.train) < cfg.batch_size:
            # Fewer labelled frames than a batch: one batch an epoch, frames repeated (each
            # with its own random crop), instead of no batch at all.
            sampler = RandomSampler(self.data.train, num_samples=cfg.batch_size)
        return StopSafeLoader(self.data.train, batch_size=cfg.batch_size, shuffle=sampler is None,
                              sampler=sampler, num_workers=cfg.workers, drop_last=True,
                              pin_memory=self.device.type == "cuda")

    def _build_model(self) -> nn.Module:
        cfg = self.cfg
        if cfg.init_weights and not cfg.resume:  # a resume brings its own weights
            model = self._initial_model(cfg.init_weights)
        else:  # the checked ImageNet tensors, once: not kept for the whole run
            state, self._backbone_state = self._backbone_state, None
            model = build_canet(cfg.backbone, self.data.class_set.num_classes,
                                pretrained_backbone=state)
        freeze_layers(model, cfg.train_layers)
        if self.dist.enabled and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        return model

    def _initial_model(self, spec: str) -> nn.Module:
        d = self.data  # merged classes' rows are fitted on the run's own frames
        frames = fit_frames(d.train, d.mean, d.std, d.input_size) if self.cfg.class_map else None
        return initial_model(spec, self.cfg.backbone, d.class_set.names,
                             self.cfg.class_map, self._print, frames)

    @property
    def bare_model(self) -> nn.Module:
        return self.model.module if hasattr(self.model, "module") else self.model

    # -- checkpoints --------------------------------------------------------------------
    def _metadata(self, metrics: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        d = self.data
        return build_metadata(self.cfg.backbone, d.class_set, mean=d.mean, std=d.std,
                              input_size=tuple(d.input_size),
                              train_args=portable_train_args(self.cfg, self.run_dir),
                              metrics=metrics or {}, lineage=self.lineage)

    def _train_state(self, epoch_stats: Optional[Dict[str, Any]], rank_rngs: List[Any]
                     ) -> Dict[str, Any]:
        # rank_rngs: every rank's augmentation stream; epoch_rng (rank 0's) for older readers.
        return {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                "epoch_stats": epoch_stats, "world_size": self.dist.world_size,
                "batch_size": self.cfg.batch_size, "rank_rngs": rank_rngs,
                "global_step": self.global_step, "epoch_rng": self.epoch_rng,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "best_score": self.best_score, "best_metrics": self.best_metrics,
                "class_weights": list(self.data.class_weights or []),
                "ema": self.ema.state_dict() if self.ema else None}

    def save_last(self) -> Optional[Path]:
        stats = self._epoch_stats.state_dict() if self._epoch_stats is not None else None
        if stats is not None:  # every rank gets the ranks' mean back, so the row stays exact
            for key in ("loss_sum", "loss_images"):
                stats[key] = D.all_reduce_mean(stats[key], self.dist, self.device)
        rngs = D.gather_objects(self.epoch_rng, self.dist)
        if not self.dist.is_main:
            return None
        return save_checkpoint(self.run_dir / "last.pt", self.bare_model,
                               self._metadata(self.best_metrics),
                               extra={"train_state": self._train_state(stats, rngs)})

    def resume(self, path: str) -> None:
        blob = self._resume_blob if path == self.cfg.resume else None
        self._resume_blob = None  # optimiser state and all: not kept for the whole run
        if blob is None:
            blob = read_checkpoint(path, map_location="cpu")
        st = train_state(blob, path)
        self.bare_model.load_state_dict(blob["state_dict"])
        # With this invocation's lr, weight decay, poly power and length (--epochs, --steps).
        restore_schedule(self.optimizer, self.scheduler, st, self.cfg, self.total_steps)
        self.scaler.load_state_dict(st["scaler"])
        self.epoch, self.step_in_epoch = int(st["epoch"]), int(st["step_in_epoch"])
        self.global_step = int(st["global_step"])
        self.best_score = float(st["best_score"])
        self.best_metrics = dict(st["best_metrics"])
        self._epoch_stats = EpochStats.from_state(st.get("epoch_stats"))
        self.epoch_rng = rank_rng(st, self.dist.rank)
        if self.epoch_rng is not None:
            set_rng_state(self.epoch_rng)
        if self.ema is not None:
            # EMA switched on at a resume starts averaging from the resumed weights.
            self.ema = ModelEMA(self.bare_model, self.cfg.ema_decay)
            if st.get("ema"):
                self.ema.load_state_dict(st["ema"])

    # -- loop ---------------------------------------------------------------------------
    def _crop_for_epoch(self, epoch: int) -> List[int]:
        cfg = self.cfg
        if cfg.late_crop_size and epoch >= cfg.epochs - cfg.late_crop_epochs:
            return list(cfg.late_crop_size)
        return list(cfg.crop_size)

    def _epoch_steps(self) -> int:  # the current epoch's: a whole one or what is left
        return epoch_steps(self.total_steps, self.steps_per_epoch,
                           self.global_step - self.step_in_epoch)

    def fit(self) -> Dict[str, Any]:
        """Train to ``epochs`` (or until stopped); returns the best validation metrics."""
        cfg = self.cfg
        if self.dist.is_main:
            prepare_run_folder(cfg, self.run_dir)
        names = [v["name"] for v in self.data.val_specs]
        names += [f"{n}_raw" for n in names] if self.ema else []
        log = RunLog(self.run_dir, names, self.dist.is_main)
        if cfg.resume:
            self.resume(cfg.resume)
            log.drop_rows_after(self.epoch)  # written before a kill stopped that epoch's save
            self._print(f"resumed from {cfg.resume} in epoch {self.epoch + 1}/{cfg.epochs} "
                        f"after step {self.step_in_epoch}/{self._epoch_steps()}")
        steps_this_run, self.interrupted = 0, False
        # The flag outlives the closing below: a first Ctrl-C there only asks to stop.
        with StopFlag() as stop:
            try:
                while self.epoch < cfg.epochs:
                    done, steps_this_run = self._run_epoch(log, stop, steps_this_run)
                    if not done:
                        self.interrupted = stop.requested  # not --max-steps-this-run
                        check_run(self)  # a diverged run keeps the last finite last.pt
                        self.save_last()
                        self._print(f"stopped in epoch {self.epoch + 1}/{cfg.epochs} after step "
                                    f"{self.step_in_epoch}/{self._epoch_steps()}; resume "
                                    f"with --resume {self.run_dir / 'last.pt'}")
                        break
                    self._end_epoch(log)
            finally:
                log.close()
                D.cleanup(self.dist)
            self.interrupted = self.interrupted or stop.requested
        return self.best_metrics

    def _should_stop(self, stop: StopFlag, steps_this_run: int) -> bool:
        limit = self.cfg.max_steps_this_run
        flag = stop.requested or (limit is not None and steps_this_run >= limit)
        return D.any_flag(flag, self.dist, self.device)

    def _print(self, msg: str) -> None:
        if self.dist.is_main and msg:
            print(msg, flush=True)

    def _run_epoch(self, log: RunLog, stop: StopFlag, steps_this_run: int
                   ) -> Tuple[bool, int]:
        """One epoch from ``step_in_epoch``; returns (finished, steps_this_run)."""
        if self.step_in_epoch == 0:
            self.epoch_rng = get_rng_state()
        self.data.train_transform.crop_size = tuple(self._crop_for_epoch(self.epoch))
        if isinstance(self.loader.sampler, DistributedSampler):
            self.loader.sampler.set_epoch(self.epoch)
        it = stoppable(self.loader, stop)  # workers leave Ctrl-C and SIGTERM to this process
        for _ in range(self.step_in_epoch):  # replay finished batches' RNG draws
            next(it)
        steps = self._epoch_steps()
        bar = progress(total=steps, initial=self.step_in_epoch,
                       desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", unit="step",
                       disable=not (self.cfg.progress and self.dist.is_main), mininterval=1.0)
        if self._epoch_stats is None:  # else resumed mid-epoch: keep counting from there
            self._epoch_stats = EpochStats()
        try:
            while self.step_in_epoch < steps:
                if self._should_stop(stop, steps_this_run):
                    return False, steps_this_run
                try:
                    images, labels = next(it)
                except StopIteration:
                    if stop.requested:  # a worker died after the stop request: .workers
                        return False, steps_this_run
                    raise
                loss, n, lr, labelled = self._train_step(images, labels)
                steps_this_run += 1
                if D.any_flag(labelled and not math.isfinite(loss), self.dist, self.device):
                    raise diverged(f"the loss is {loss}", self.global_step + 1, lr, self.run_dir)
                self._account(loss if labelled else None, n, lr, bar, log)
        finally:
            bar.close()
        return True, steps_this_run

    def _train_step(self, images: torch.Tensor, labels: torch.Tensor
                    ) -> Tuple[float, int, float, bool]:
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        if self.cfg.cutmix > 0:
            gen = step_generator(self.cfg.seed + self.dist.rank, self.global_step)
            images, labels = cutmix(images, labels, self.cfg.cutmix, gen)
        if self.cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.use_amp):
            logits = self.model(images)
            loss, labelled = labelled_loss(self.criterion, logits.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]  # this step's, logged: the next is set below
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.bare_model)
        value, labelled = torch.stack([loss.detach(), labelled.float()]).tolist()  # one sync
        return value, images.shape[0], lr, bool(labelled)

    def _account(self, loss: Optional[float], n: int, lr: float, bar: Any, log: RunLog) -> None:
        self.step_in_epoch += 1
        self.global_step += 1
        s = self._epoch_stats
        s.add(loss, n, lr)
        rate = s.images * self.dist.world_size / max(s.seconds, 1e-9)
        bar.set_postfix(loss="-" if loss is None else f"{loss:.4f}", img_s=f"{rate:.1f}",
                        lr=f"{lr:.2e}", refresh=False)
        bar.update(1)
        if loss is not None:
            log.scalar("train/loss", loss, self.global_step)
        log.scalar("train/lr", lr, self.global_step)

    def _end_epoch(self, log: RunLog) -> None:
        cfg = self.cfg
        check_run(self)  # before best.pt and last.pt are written
        stats, self._epoch_stats = self._epoch_stats, None
        count, elapsed = stats.images, stats.seconds
        loss = stats.mean_over(lambda v: D.all_reduce_mean(v, self.dist, self.device))
        self.epoch += 1
        self.step_in_epoch = 0
        row: Dict[str, Any] = {"epoch": self.epoch, "step": self.global_step, "train_loss": loss,
                               "lr": stats.lr,  # its last step's (the next is lower)
                               "images_per_s": count * self.dist.world_size / max(elapsed, 1e-9),
                               "epoch_s": elapsed}
        due = self.epoch % max(cfg.val_every, 1) == 0 or self.epoch == cfg.epochs
        if due and self.data.val:  # without validation sets the last weights are the result
            self._validate(row, log)
        # RNG state now is the next epoch's start state, so resume needs no replay.
        self.epoch_rng = get_rng_state()
        # The row first: last.pt marks the epoch done, and a resume never writes its row again.
        log.row(row)
        self.save_last()
        log.scalar("epoch/train_loss", loss, self.epoch)
        self._print(" ".join(f"{k}={v:{'.2e' if k == 'lr' else '.4f'}}" if isinstance(v, float)
                             else f"{k}={v}" for k, v in row.items()))  # lr as the bar shows it

    def _validate(self, row: Dict[str, Any], log: RunLog) -> None:
        if self.dist.is_main:
            # With EMA the averaged weights are the candidate; the raw ones are logged too.
            candidate = self.ema.module if self.ema else self.bare_model
            results = self._score(candidate, "", row, log)
            if self.ema:
                self._score(self.bare_model, "_raw", row, log)
            score, how = selection_score(results, self.cfg)
            row["score"] = score
            log.scalar("val/score", score, self.epoch)
            if better(score, self.best_score):
                self.best_score = score
                self.best_metrics = {"epoch": self.epoch, "score": score, "selection": how,
                                     "ema": self.ema is not None, **results}
                save_checkpoint(self.run_dir / "best.pt", candidate,
                                self._metadata(self.best_metrics))
        D.barrier(self.dist)

    def _score(self, model: nn.Module, suffix: str, row: Dict[str, Any], log: RunLog
               ) -> Dict[str, Dict[str, Any]]:
        return logged_validation(model, self.data, self.device, self.cfg, suffix, row, log,
                                 self.epoch)
