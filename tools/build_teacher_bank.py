"""Build (or complete) the PromptKD teacher feature bank that a student run would use, without training it.

    python tools/build_teacher_bank.py <train.py arguments> TRAINER.PROMPTKD.TEACHER_BANK auto
    LAUNCH="python tools/build_teacher_bank.py" bash scripts/promptkd/base2new_train.sh caltech101 1 \\
        TRAINER.PROMPTKD.TEACHER_BANK auto                 # the bank of the script's exact config
    torchrun --nproc_per_node 4 tools/build_teacher_bank.py ...      # shards split over the processes

Takes exactly ``train.py``'s arguments (a leading ``train.py``, as the scripts pass it through ``LAUNCH``, is
skipped), so the bank is keyed by the same config, split and teacher as the students that read it. ``tools/sweep.py``
runs this once per (dataset, teacher) before the students when ``--opts`` enable ``TRAINER.PROMPTKD.TEACHER_BANK``.
Nothing is written to the run's output folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import train  # noqa: E402
from dassl.config import ConfigError  # noqa: E402
from dassl.engine import build_trainer  # noqa: E402
from dassl.utils import set_random_seed  # noqa: E402
from dassl.utils.distributed import init_distributed  # noqa: E402
from dassl.utils.errors import run_entry_point  # noqa: E402


def build_bank(argv: list[str]):
    """The bank of the run that ``argv`` (train.py's arguments) describes, built or completed; returns it."""
    if argv and Path(argv[0]).name == "train.py":
        argv = argv[1:]
    args = train.build_parser().parse_args(argv)
    cfg = train.setup_cfg(args)
    if cfg.TRAINER.NAME != "PromptKD" or not cfg.TRAINER.PROMPTKD.TEACHER_BANK:
        raise ConfigError(
            f"a teacher bank belongs to a PromptKD run with TRAINER.PROMPTKD.TEACHER_BANK set (got trainer "
            f"{cfg.TRAINER.NAME or '(none)'}, TEACHER_BANK '{cfg.TRAINER.PROMPTKD.TEACHER_BANK}'); add "
            "--trainer PromptKD ... TRAINER.PROMPTKD.TEACHER_BANK auto"
        )
    init_distributed(cfg.USE_CUDA)
    if cfg.SEED >= 0:
        set_random_seed(cfg.SEED)
    trainer = build_trainer(cfg)
    trainer.prepare_teacher()
    return trainer.bank


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    def body() -> None:
        bank = build_bank(argv)
        print(f"Teacher bank ready: {bank.directory} ({bank.size_bytes() / 2**20:.1f} MiB)")

    return run_entry_point(body)


if __name__ == "__main__":
    sys.exit(main())
