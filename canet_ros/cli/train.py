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

"""``canet train``: train CANet with the paper's recipe (see docs/training.md)."""
from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ..checkpoint import CheckpointError, read_checkpoint
from ..errors import CanetError
from ..training.config import add_config_arguments, config_from_args
from ..training.config_types import weights_file
from ..training.resume_notes import finished_run, missing_data_folder, unrecorded_export
from . import EXIT_INTERRUPTED, prior_strength, run_command
from .shm import report_shm_or_raise

if TYPE_CHECKING:
    from ..training.config import TrainConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    # "resolve": _pretrained_flags replaces the flags add_config_arguments made for that
    # option; every other option is named once.
    p = subparsers.add_parser(
        "train", help="train a CANet model", conflict_handler="resolve",
        description="Train CANet. Defaults follow the paper (Adam, lr 1e-4, wd 1e-4, batch 8, "
                    "poly 0.9, ENet-weighted cross-entropy); a --config YAML overrides the "
                    "defaults and flags override the YAML. Start under torchrun for DDP.")
    add_config_arguments(p)
    _check_forms(p)
    _pretrained_flags(p)
    p.set_defaults(func=run)


def _check_forms(parser: argparse.ArgumentParser) -> None:
    """Give the flags whose form argparse can judge their argparse types.

    A malformed value is a usage error (status 2), as in every command. The rest of the
    forms (device, positive counts) come with add_config_arguments, shared with the
    --config checks; a YAML export_prior_correction is range-checked on merging.
    """
    forms = {"export_prior_correction": prior_strength}
    for action in parser._actions:
        if action.dest in forms:
            action.type = forms[action.dest]


def _pretrained_flags(parser: argparse.ArgumentParser) -> None:
    """Give --pretrained-backbone an optional FILE, as its config key takes true or a path."""
    parser.add_argument(
        "--pretrained-backbone", nargs="?", const=True, default=None, type=weights_file,
        metavar="FILE", dest="pretrained_backbone",
        help="start the context backbone from ImageNet weights: torchvision's file from the "
             "torch hub cache ($TORCH_HOME/hub/checkpoints, downloaded if absent and online), "
             "or FILE, a torchvision-format state_dict (.pth)")
    parser.add_argument("--no-pretrained-backbone", action="store_const", const=False,
                        default=None, dest="pretrained_backbone",
                        help="random backbone initialisation (the default)")


def _resumable(path: str) -> Dict[str, Any]:
    """Read the --resume checkpoint; one that cannot continue a run is refused here.

    That is before its saved config is merged, the data set loads or the run folder is
    written to (model.pt, best.pt).
    """
    from ..training.run_folder import train_state

    blob = read_checkpoint(path)
    train_state(blob, path)
    return blob


def _check_out_dir(out_dir: str, resume: Optional[str]) -> None:
    """Refuse to write where this run would replace another run's checkpoints as it goes.

    A resume goes on in its own folder (last.pt's); another folder holding checkpoints
    holds another run.
    """
    held = [name for name in ("last.pt", "best.pt") if (Path(out_dir) / name).is_file()]
    if not held:
        return
    if not resume:
        raise ValueError(f"{out_dir}: holds an earlier run ({', '.join(held)}), which a new "
                         f"run would replace; continue it with --resume "
                         f"{Path(out_dir) / 'last.pt'}, or choose another --out-dir")
    own = Path(resume).parent
    if Path(out_dir).resolve() != own.resolve():
        raise ValueError(f"{out_dir}: holds another run ({', '.join(held)}), which continuing "
                         f"{resume} there would replace; continue it in its own folder "
                         f"({own}, the default on --resume) or in an empty --out-dir")


def run(args: argparse.Namespace) -> int:
    held: List[Any] = []  # the run folder's lock, held until the run (and its export) ends
    try:
        return _run(args, held)
    finally:
        for lock in held:
            lock.release()


def _run(args: argparse.Namespace, held: List[Any]) -> int:
    from ..training.trainer import Trainer
    from ..training.transfer import load_class_map

    try:
        blob = _resumable(args.resume) if args.resume else None
        cfg = config_from_args(args, blob)
        if cfg.resume and blob is None:  # resume: in the --config file
            blob = _resumable(cfg.resume)
        done = finished_run(cfg.resume, blob["train_state"], cfg.to_dict()) if blob else None
        if blob and not done:  # a finished run needs no data to export
            _raise(missing_data_folder(cfg.resume, blob, cfg.to_dict(), vars(args)))
        # Before the folder is judged: another run (or this run, resumed twice) may be
        # writing it, and this run's start-up would delete its checkpoint temp files.
        lock = _lock(cfg, done) if not done or _exports_into(cfg) else None
        if lock is not None:  # None: a finished run read only, or a rank of torchrun but 0
            held.append(lock)
        _check_out_dir(cfg.out_dir, cfg.resume)
        if done:
            return _finished(cfg, blob, done)
        if cfg.class_map:  # read now: a bad file is one line before the data loads
            load_class_map(cfg.class_map)
        trainer = Trainer(cfg)
        best = trainer.fit()
    except (ValueError, CanetError, CheckpointError) as exc:
        print(f"canet train: error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # a full /dev/shm is the machine's, not a bug: one line
        return report_shm_or_raise(exc, "canet train")
    except KeyboardInterrupt:
        print("canet train: aborted", file=sys.stderr)
        return 130
    if best:
        print(f"best: epoch {best.get('epoch')} score {best.get('score'):.4f} "
              f"({trainer.run_dir / 'best.pt'})")
    finished = trainer.epoch >= cfg.epochs  # a stopped run exports when resumed to the end
    exporting = bool(cfg.export) or cfg.export_prior_correction is not None
    if finished and trainer.dist.is_main and exporting:
        if trainer.interrupted:  # Ctrl-C after the last epoch, while the run was closing
            print(f"stopped before exporting; --resume {trainer.run_dir / 'last.pt'} exports "
                  f"the finished run")
        else:
            _export(trainer.run_dir, cfg)
    elif blob and trainer.dist.is_main and not exporting:
        _say(unrecorded_export(cfg.resume, blob, finished))
    return EXIT_INTERRUPTED if trainer.interrupted else 0


def _exports_into(cfg: TrainConfig) -> bool:
    """Whether resuming a finished run writes into cfg.out_dir (its export lands there).

    Else it only reads the run: a finished run on a read-only disk still exports elsewhere.
    """
    if not cfg.export and cfg.export_prior_correction is None:
        return False
    out_dir = Path(cfg.out_dir).resolve()
    target = Path(cfg.export).resolve() if cfg.export else out_dir / "model.pt"
    return out_dir in target.parents


def _lock(cfg: TrainConfig, done: Optional[str]) -> Any:
    """Lock cfg.out_dir; a folder that cannot take the lock file is named with a way out."""
    from ..training.run_folder import lock_run_folder

    try:
        return lock_run_folder(Path(cfg.out_dir))
    except CanetError as exc:
        if getattr(exc, "errno", None) not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        if done:
            run = Path(cfg.resume).parent
            source = run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt"
            prior = cfg.export_prior_correction
            way = (f"export to a writable place with --export FILE or --out-dir DIR, or with "
                   f"canet export --format checkpoint --checkpoint {source} --out FILE"
                   + ("" if prior is None else f" --prior-correction {prior:g}"))
        else:
            way = "write this run into a writable --out-dir DIR"
        raise CanetError(f"{exc}; {way}") from None


def _raise(problem: Optional[str]) -> None:
    if problem:
        raise ValueError(problem)


def _say(line: Optional[str]) -> None:
    if line:
        print(line)


def _finished(cfg: TrainConfig, blob: Dict[str, Any], message: str) -> int:
    """Close a resume of a run with nothing left to train: say so, export if asked.

    Not the trainer: it would load the data set and rewrite config.yaml and log.csv for
    no step. (A Ctrl-C after the last epoch skips the export; this resume makes it.)
    """
    if os.environ.get("RANK", "0") != "0":  # under torchrun: rank 0 speaks and exports
        return 0
    print(message)
    best = (blob["train_state"].get("best_metrics") or {}) if blob else {}
    run = Path(cfg.resume).parent
    if best.get("score") is not None:
        print(f"best: epoch {best.get('epoch')} score {best['score']:.4f} "
              f"({run / 'best.pt'})")
    if cfg.export or cfg.export_prior_correction is not None:
        _export(run, cfg, Path(cfg.out_dir))
    else:
        _say(unrecorded_export(cfg.resume, blob, True))
    return 0


def _export(run_dir: Path, cfg: TrainConfig, out_dir: Optional[Path] = None) -> None:
    """Export ``run_dir``'s best.pt (else last.pt) to cfg.export or out_dir/model.pt."""
    from ..training.export import export_checkpoint

    source = run_dir / "best.pt"
    if not source.is_file():  # nothing was validated: the run's final weights
        source = run_dir / "last.pt"
    out = export_checkpoint(source, cfg.export or (out_dir or run_dir) / "model.pt",
                            prior_correction=cfg.export_prior_correction)
    print(f"exported {out}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="canet")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    return run_command(args.func, args)


if __name__ == "__main__":
    from .sigterm import exit_quietly
    exit_quietly(main, EXIT_INTERRUPTED)
