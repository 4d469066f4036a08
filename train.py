"""Train or evaluate a method: flag-compatible with the upstream ``train.py`` of CoOp/MaPLe/PromptSRC/PromptKD.

    python train.py --root DATA --seed 1 --trainer PromptKD \
        --dataset-config-file configs/datasets/caltech101.yaml \
        --config-file configs/trainers/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml \
        --output-dir output/... [KEY VALUE ...]

Config merge order: engine defaults + ``extend_cfg`` -> dataset yaml -> method yaml -> flags -> ``KEY VALUE``.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys
from pathlib import Path

import torch

import trainers  # noqa: F401  (registers the trainers)
from dassl.config import get_cfg_default, merge_cfg_from_file, merge_cfg_from_list
from dassl.engine import build_trainer
from dassl.engine.run_folder import eval_only_fingerprint, open_run_folder
from dassl.evaluation.protocol import resolve_val_source, trainer_protocol_kind
from dassl.utils import RunLog, atomic_write_text, collect_env_info, detail, set_random_seed
from dassl.utils.distributed import broadcast_from_main, init_distributed, is_main_process, rank, world_size
from dassl.utils.errors import DEBUG_ENV_VAR, NonFiniteError, UserError, run_entry_point
from promptkd import datasets  # noqa: F401  (registers the datasets; promptkd/__init__.py: not `import datasets`)
from trainers.config import extend_cfg

__all__ = ["extend_cfg", "setup_cfg", "reset_cfg", "main", "build_parser"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def print_args(args: argparse.Namespace, cfg) -> None:
    """The arguments and the full config, as upstream prints them: into log.txt (the console shows them with
    ``--verbose``; ``config.yaml`` holds the same config)."""
    lines = ["***************", "** Arguments **", "***************"]
    lines += [f"{key}: {args.__dict__[key]}" for key in sorted(args.__dict__.keys())]
    lines += ["************", "** Config **", "************", str(cfg)]
    detail("\n".join(lines))


def reset_cfg(cfg, args: argparse.Namespace) -> None:
    """Apply the command-line flags to the config (after the yaml files, before ``KEY VALUE`` overrides)."""
    if args.root:
        cfg.DATASET.ROOT = args.root
    if args.output_dir:
        cfg.OUTPUT_DIR = args.output_dir
    if args.resume:
        cfg.RESUME = args.resume  # upstream PromptKD drops this value; we honour it
    if args.seed is not None:  # upstream tests `if args.seed:`, which lets the -1 default clobber a yaml SEED
        cfg.SEED = args.seed
    if args.source_domains:
        cfg.DATASET.SOURCE_DOMAINS = args.source_domains
    if args.target_domains:
        cfg.DATASET.TARGET_DOMAINS = args.target_domains
    if args.transforms:
        cfg.INPUT.TRANSFORMS = args.transforms
    if args.trainer:
        cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    if args.head:
        cfg.MODEL.HEAD.NAME = args.head


def setup_cfg(args: argparse.Namespace):
    """Build the frozen config: defaults -> dataset yaml -> method yaml -> flags -> KEY VALUE opts."""
    cfg = get_cfg_default()
    extend_cfg(cfg)
    if args.dataset_config_file:
        merge_cfg_from_file(cfg, args.dataset_config_file)
    if args.config_file:
        merge_cfg_from_file(cfg, args.config_file)
    reset_cfg(cfg, args)
    merge_cfg_from_list(cfg, args.opts or [])
    # the run records the split it selected on, not "auto"
    cfg.DATASET.VAL_SOURCE = resolve_val_source(cfg, trainer_protocol_kind(cfg.TRAINER.NAME))
    if not cfg.EXPERIMENT:
        stem = Path(args.config_file).stem if args.config_file else "defaults"
        cfg.EXPERIMENT = f"{cfg.TRAINER.NAME}/{stem}"
    cfg.freeze()
    return cfg


def shipped_configs() -> dict[str, list[str]]:
    """``{"datasets": [stems], "<Trainer>": [config file names]}`` of the yaml files under ``configs/``."""
    found: dict[str, list[str]] = {"datasets": sorted(p.stem for p in (CONFIG_DIR / "datasets").glob("*.yaml"))}
    for folder in sorted(p for p in (CONFIG_DIR / "trainers").glob("*") if p.is_dir()):
        found[folder.name] = sorted(p.name for p in folder.glob("*.yaml"))
    return found


def help_epilog() -> str:
    """The ``--help`` footer: what ``--trainer`` and the config flags accept (from the registry and configs/)."""
    from dassl.engine import TRAINER_REGISTRY

    configs = shipped_configs()
    lines = [f"trainers (--trainer): {', '.join(sorted(TRAINER_REGISTRY.registered_names()))}", "",
             f"dataset configs (--dataset-config-file {CONFIG_DIR.name}/datasets/<name>.yaml):",
             "  " + " ".join(configs.pop("datasets")), "",
             f"method configs (--config-file {CONFIG_DIR.name}/trainers/<Trainer>/<file>):"]  # fmt: skip
    lines += [f"  {trainer}: {' '.join(files)}" for trainer, files in configs.items()]
    lines += ["", "console: progress and one line per epoch; the full config and every line go to "
              "<output-dir>/log.txt and config.yaml (--verbose prints them too, --quiet only epochs and results)"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The upstream flags (those of Dassl's domain-adaptation and CNN set-up are accepted but not shown)."""
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=help_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=str, default="", help="path to dataset")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument("--resume", type=str, default="", help="checkpoint directory (from which the training resumes)")
    parser.add_argument("--seed", type=int, default=None, help="only positive value enables a fixed seed")
    # Dassl's domain-adaptation and CNN flags: accepted for upstream command lines, not shown (no method uses them)
    parser.add_argument("--source-domains", type=str, nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--target-domains", type=str, nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    parser.add_argument("--config-file", type=str, default="", help="path to config file")
    parser.add_argument("--dataset-config-file", type=str, default="", help="path to config file for dataset setup")
    parser.add_argument("--trainer", type=str, default="", help="name of trainer (listed below)")
    parser.add_argument("--backbone", type=str, default="", help=argparse.SUPPRESS)
    parser.add_argument("--head", type=str, default="", help=argparse.SUPPRESS)
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument("--model-dir", type=str, default="", help="load model from this directory for eval-only mode")
    parser.add_argument("--load-epoch", type=int, help="load model weights at this epoch for evaluation")
    parser.add_argument("--no-train", action="store_true", help="do not call trainer.train()")
    parser.add_argument("--debug", action="store_true", help=f"tracebacks instead of error messages (= {DEBUG_ENV_VAR}=1)")
    parser.add_argument(
        "--force", action="store_true",
        help="start afresh: a used --output-dir is kept as <dir>.old-<timestamp> (the scripts: FORCE=1)",
    )  # fmt: skip
    console = parser.add_mutually_exclusive_group()
    console.add_argument("--verbose", action="store_const", dest="console", const="verbose", default="normal",
                         help="print everything on the console too (config dump, a line per batch), as upstream")
    console.add_argument("--quiet", action="store_const", dest="console", const="quiet",
                         help="print only one line per epoch, the results, warnings and errors")  # fmt: skip
    parser.add_argument(
        "opts", default=None, nargs=argparse.REMAINDER, help="modify config options using the command-line"
    )
    return parser


def run(args: argparse.Namespace):
    """Set up the run described by ``args`` and train or evaluate; returns the trainer.

    The output folder is locked for the run. A folder that holds this config's finished run is left exactly as it
    is (returns None); one that holds a run of another config is refused (``RunStateError``). The run owns its log:
    stdout and stderr are teed into ``<OUTPUT_DIR>/log.txt`` until it returns or fails (the failure's traceback is
    kept there too), then the console is as it was.
    """
    cfg = setup_cfg(args)
    distributed = init_distributed(cfg.USE_CUDA)
    folder, finished = None, False
    if is_main_process() and not args.no_train:
        extra = eval_only_fingerprint(args.model_dir, args.load_epoch) if args.eval_only else None
        folder, finished = open_run_folder(cfg, extra, force=args.force, command=sys.argv)
    if distributed:
        flag = torch.tensor([float(finished)])
        broadcast_from_main([flag])
        finished = bool(flag.item())
    if finished:
        print(f"{cfg.OUTPUT_DIR} holds this config's finished run: nothing to do (FORCE=1 / --force runs it again)")
        if folder is not None:
            folder.release()
        return None
    try:
        return _run(args, cfg, distributed)
    finally:
        if folder is not None:
            folder.release()


def _run(args: argparse.Namespace, cfg, distributed: bool):
    main = is_main_process()  # the main process logs and writes for everyone
    console = getattr(args, "console", "normal") if main else "off"
    with RunLog(cfg.OUTPUT_DIR if main else None, console=console):
        return _run_logged(args, cfg, distributed)


def _run_logged(args: argparse.Namespace, cfg, distributed: bool):
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED + rank())  # other augmentations per process; prompts are synced from the main one
    if is_main_process():
        atomic_write_text(osp.join(cfg.OUTPUT_DIR, "config.yaml"), cfg.dump())
    if distributed:
        print(f"Distributed training: {world_size()} processes ({torch.distributed.get_backend()}); "
              f"batch size {cfg.DATALOADER.TRAIN_X.BATCH_SIZE} per process")  # fmt: skip

    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True

    print_args(args, cfg)
    print(f"Run folder: {cfg.OUTPUT_DIR} (config.yaml, log.txt)")
    detail("Collecting env info ...")
    detail(f"** System info **\n{collect_env_info()}\n")

    trainer = build_trainer(cfg)

    if args.eval_only:
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
        return trainer

    if not args.no_train:
        trainer.train()
    return trainer


def main(argv: list[str] | None = None) -> int:
    """The CLI: a user error (docs/errors.md) is one ``Error:`` message and exit code 2 (3: non-finite values)."""
    args = build_parser().parse_args(argv)

    def body() -> None:
        try:
            run(args)
        except FloatingPointError as err:
            if isinstance(err, UserError):
                raise
            raise NonFiniteError(
                f"training stopped on a non-finite value ({err}). Lower OPTIM.LR, or with TRAINER.<METHOD>.PREC "
                f"fp16 use amp or bf16; {DEBUG_ENV_VAR}=1 shows where it happened."
            ) from err

    return run_entry_point(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
