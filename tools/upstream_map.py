"""The original repositories' command lines and configs, mapped to ours: the source of ``docs/upstream.md``.

    python tools/upstream_map.py                      # print the markdown
    python tools/upstream_map.py --write docs/upstream.md
    python tools/upstream_map.py --check docs/upstream.md   # exit 1 if the file is stale

Each original command line below runs our script of that name (or the new name given) in dry-run mode; the
``train.py`` commands it prints are parsed, and each run's output folder must be the one the original script
writes. The table is rendered from those runs, so it says what the scripts do now and cannot drift from them
(``tests/tools/test_upstream_map.py`` regenerates it and runs every row).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# The repositories (docs/design.md#sources lists them with their commits)
REPOS = {
    "CoOp": "KaiyangZhou/CoOp (CoOp, CoCoOp, zero-shot CLIP)",
    "KgCoOp": "htyao89/KgCoOp",
    "MaPLe": "muzairkhattak/multimodal-prompt-learning (MaPLe, IVLP, VPT, language prompting)",
    "PromptSRC": "muzairkhattak/PromptSRC",
    "PromptKD": "zhengli97/PromptKD",
}
SEEDS = (1, 2, 3)
# The environment the rows run under: relative roots, so the table shows upstream-style paths
DRY_ENV = {"DATA": "data", "OUTPUT": "output", "TEACHER_ROOT": "teacher_model", "PYTHON": "python",
           "DRY_RUN": "1", "FORCE": "1"}  # fmt: skip


@dataclass(frozen=True)
class ScriptRow:
    """One original command line: ``upstream`` as its README gives it, ``ours`` if our name differs, and the
    output folders (under ``output/``) of the original's ``train.py`` runs, in order."""

    repo: str
    upstream: str
    dirs: tuple[str, ...]
    ours: str = ""
    note: str = ""
    env: dict[str, str] = field(default_factory=dict)  # narrows a loop for the dry run (e.g. DATASETS)

    @property
    def command(self) -> str:
        return self.ours or self.upstream


def _per_seed(pattern: str) -> tuple[str, ...]:
    return tuple(pattern.format(seed=s) for s in SEEDS)


def _b2n(dataset: str, trainer: str, cfg: str, part: str = "train_base", seed: int = 1, shots: str = "shots_16") -> str:
    return f"output/base2new/{part}/{dataset}/{shots}/{trainer}/{cfg}/seed{seed}"


def _xd(trainer: str, cfg: str, seed: int = 1, source: str = "imagenet") -> str:
    return f"output/{source}/{trainer}/{cfg}_16shots/seed{seed}"


def _eval(trainer: str, cfg: str, dataset: str, seed: int = 1) -> str:
    return f"output/evaluation/{trainer}/{cfg}_16shots/{dataset}/seed{seed}"


MAPLE_B2N, MAPLE_XD = "vit_b16_c2_ep5_batch4_2ctx", "vit_b16_c2_ep5_batch4_2ctx_cross_datasets"
IVLP_MAPLE, IVLP_SRC, IVLP_LANG = ("vit_b16_c2_ep5_batch4_2+2ctx", "vit_b16_c2_ep20_batch4_4+4ctx",
                                   "vit_b16_c2_ep5_batch4_4ctx_language_only")  # fmt: skip
VPT_CFG = "vit_b16_c2_ep5_batch4_4"
SRC_B2N, SRC_XD = "vit_b16_c2_ep20_batch4_4+4ctx", "vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets"
SRC_FS = "vit_b16_c2_ep50_batch4_4+4ctx_few_shot"
COCOOP = "vit_b16_c4_ep10_batch1_ctxv1"
KGCOOP = "vit_b16_ep100_ctxv1"
KD_B2N, KD_XD = "vit_b16_c2_ep20_batch8_4+4ctx", "vit_b16_c2_ep20_batch8_4+4ctx_cross_datasets"


def _maple_repo_rows(folder: str, suffix: str, trainer: str, b2n: str, xd: str, note: str = "") -> list[ScriptRow]:
    base = f"scripts/{folder}"
    return [
        ScriptRow("MaPLe", f"bash {base}/base2new_train_{suffix}.sh imagenet 1", (_b2n("imagenet", trainer, b2n),), note=note),
        ScriptRow("MaPLe", f"bash {base}/base2new_test_{suffix}.sh imagenet 1", (_b2n("imagenet", trainer, b2n, "test_new"),)),
        ScriptRow("MaPLe", f"bash {base}/xd_train_{suffix}.sh imagenet 1", (_xd(trainer, xd),)),
        ScriptRow("MaPLe", f"bash {base}/xd_test_{suffix}.sh caltech101 1", (_eval(trainer, xd, "caltech101"),),
                  note="loads the epoch the config trains for (the original IVLP/VPT scripts load 2 of 5)" if trainer in ("IVLP", "VPT") else ""),  # fmt: skip
    ]  # fmt: skip


SCRIPT_ROWS: list[ScriptRow] = [
    # --- CoOp repository: CoOp's own protocols, CoCoOp, zero-shot CLIP
    ScriptRow("CoOp", "bash scripts/coop/main.sh caltech101 rn50 end 16 1 False",
              _per_seed("output/caltech101/CoOp/rn50_1shots/nctx16_cscFalse_ctpend/seed{seed}"),
              note="seeds from SEEDS (default 1 2 3); one seed: scripts/coop/fewshot.sh <dataset> <seed> [shots] [cfg] [nctx] [csc] [ctp]"),
    ScriptRow("CoOp", "bash scripts/coop/eval.sh imagenetv2 rn50_ep50",
              _per_seed("output/evaluation/CoOp/rn50_ep50_16shots/nctx16_cscFalse_ctpend/imagenetv2/seed{seed}"),
              note="the ImageNet model of main.sh imagenet rn50_ep50 end 16 16 False, epoch 50"),
    ScriptRow("CoOp", "bash scripts/zsclip/zeroshot.sh caltech101 rn50", ("output/ZeroshotCLIP/rn50/caltech101",)),
    ScriptRow("CoOp", "bash scripts/cocoop/base2new_train.sh caltech101 1", (_b2n("caltech101", "CoCoOp", COCOOP),)),
    ScriptRow("CoOp", "bash scripts/cocoop/base2new_test.sh caltech101 1", (_b2n("caltech101", "CoCoOp", COCOOP, "test_new"),)),
    ScriptRow("CoOp", "bash scripts/cocoop/xd_train.sh 1", (_xd("CoCoOp", COCOOP),)),
    ScriptRow("CoOp", "bash scripts/cocoop/xd_test.sh caltech101 1", (_eval("CoCoOp", COCOOP, "caltech101"),)),
    # --- KgCoOp
    ScriptRow("KgCoOp", "bash scripts/kgcoop/base2new_train.sh dtd 8.0",
              _per_seed(f"output/base2new/train_base/dtd/shots_16_8.0/KgCoOp/{KGCOOP}/seed{{seed}}"),
              note="<dataset> <weight>, seeds from SEEDS; one seed: scripts/kgcoop/base2new_train_seed.sh <dataset> <seed> (W env)"),
    ScriptRow("KgCoOp", "bash scripts/kgcoop/base2new_test.sh dtd 8.0",
              _per_seed(f"output/base2new/test_new/dtd/shots_16_8.0/KgCoOp/{KGCOOP}/seed{{seed}}"),
              note="one seed: scripts/kgcoop/base2new_test_seed.sh <dataset> <seed>"),
    ScriptRow("KgCoOp", "bash scripts/kgcoop/xd_train.sh",
              tuple(f"output_1120_xd/base2new/train_base/{d}/shots_4_8.0/KgCoOp/{KGCOOP}/seed{s}"
                    for d in ("caltech101", "dtd") for s in SEEDS),
              note="4 shots of all classes on every dataset (DATASETS env narrows the list; here: caltech101 dtd); "
                   "cross-dataset from ImageNet: scripts/kgcoop/xd_train_imagenet.sh <seed>",
              env={"DATASETS": "caltech101 dtd"}),  # fmt: skip
    # --- MaPLe repository (MaPLe, IVLP, VPT, deep language prompting)
    *_maple_repo_rows("maple", "maple", "MaPLe", MAPLE_B2N, MAPLE_XD),
    *_maple_repo_rows("independent-vlp", "ivlp", "IVLP", IVLP_MAPLE, IVLP_MAPLE),
    *_maple_repo_rows("vpt", "vpt", "VPT", VPT_CFG, VPT_CFG, note="runs in fp32 whatever PREC says, as upstream"),
    *_maple_repo_rows("language-prompting", "lp", "IVLP", IVLP_LANG, IVLP_LANG),
    ScriptRow("MaPLe", "bash scripts/maple/reproduce_maple.sh caltech101 1 weights/maple/base2new",
              (_b2n("caltech101", "MaPLe", MAPLE_B2N, "test_base"), _b2n("caltech101", "MaPLe", MAPLE_B2N, "test_new")),
              note="evaluates <weights>/base/seed<S> on the base and the novel classes"),
    ScriptRow("MaPLe", "bash scripts/maple/reproduce_maple_xd.sh caltech101 1 weights/maple/xd",
              (_eval("MaPLe", MAPLE_XD, "caltech101"),), note="evaluates <weights>/seed<S>"),
    # --- PromptSRC repository
    ScriptRow("PromptSRC", "bash scripts/promptsrc/base2new_train.sh imagenet 1", (_b2n("imagenet", "PromptSRC", SRC_B2N),)),
    ScriptRow("PromptSRC", "bash scripts/promptsrc/base2new_test.sh imagenet 1", (_b2n("imagenet", "PromptSRC", SRC_B2N, "test_new"),)),
    ScriptRow("PromptSRC", "bash scripts/promptsrc/xd_train.sh imagenet 1", (_xd("PromptSRC", SRC_XD),),
              note="the original names a missing ep5 config; the ep20 cross-dataset one is used, as its reproduce_xd.sh does"),
    ScriptRow("PromptSRC", "bash scripts/promptsrc/xd_test.sh caltech101 1", (_eval("PromptSRC", SRC_XD, "caltech101"),)),
    ScriptRow("PromptSRC", "bash scripts/promptsrc/few_shot.sh caltech101 16",
              _per_seed(f"output/caltech101/PromptSRC/{SRC_FS}_16shots/seed{{seed}}"),
              note="with the dataset's GPA (30/30, or 45/5 for Cars, Flowers, Aircraft, DTD, EuroSAT)"),
    ScriptRow("PromptSRC", "bash scripts/promptsrc/reproduce_base2novel_setting.sh caltech101 1 weights/promptsrc/base2new",
              (_b2n("caltech101", "PromptSRC", SRC_B2N, "test_base"), _b2n("caltech101", "PromptSRC", SRC_B2N, "test_new"))),
    ScriptRow("PromptSRC", "bash scripts/promptsrc/reproduce_xd.sh caltech101 1 weights/promptsrc/xd",
              (_eval("PromptSRC", SRC_XD, "caltech101"),)),
    ScriptRow("PromptSRC", "bash scripts/promptsrc/reproduce_few_shot.sh caltech101 16 weights/promptsrc/few_shot",
              _per_seed(f"output/few_shot/caltech101/PromptSRC/{SRC_FS}_16shots/seed{{seed}}"),
              note="evaluates <weights>/<shots>shot/seed<S>"),
    ScriptRow("PromptSRC", "bash scripts/independent-vlp/reproduce_ivlp.sh caltech101 1 weights/ivlp/base2new",
              (_b2n("caltech101", "IVLP", IVLP_SRC, "test_base"), _b2n("caltech101", "IVLP", IVLP_SRC, "test_new")),
              note="loads epoch 20, the epoch its config trains for (the original loads 5)"),
    # --- PromptKD repository
    ScriptRow("PromptKD", "bash scripts/promptsrc/base2new_train.sh caltech101 1  (CFG edited to vit_l14_c2_ep20_batch8_4+4ctx)",
              ("teacher_model/Caltech101",), ours="bash scripts/promptsrc/base2new_train_teacher.sh caltech101",
              note="the teacher gets its own script and lands where the student looks for it (no renaming)"),
    ScriptRow("PromptKD", "bash scripts/promptkd/base2new_train.sh caltech101 1",
              (f"output/base2new/train_base/caltech101/shots_0/PromptKD/{KD_B2N}/seed_1",)),
    ScriptRow("PromptKD", "bash scripts/promptkd/xd_train.sh caltech101 1", (f"output/caltech101/PromptKD/{KD_XD}_0shots/seed1",)),
]  # fmt: skip


@dataclass(frozen=True)
class ConfigRow:
    repo: str
    upstream: str  # <Trainer>/<stem> under configs/trainers
    ours: str = ""  # when the name differs
    note: str = ""

    @property
    def path(self) -> Path:
        return REPO_ROOT / "configs" / "trainers" / f"{self.ours or self.upstream}.yaml"


def _configs(repo: str, trainer: str, *stems: str) -> list[ConfigRow]:
    return [ConfigRow(repo, f"{trainer}/{stem}") for stem in stems]


CONFIG_ROWS: list[ConfigRow] = [
    *_configs("CoOp", "CoOp", "rn50", "rn50_ctxv1", "rn50_ep50", "rn50_ep50_ctxv1", "rn50_ep100", "rn50_val", "rn101",
              "rn101_ep50", "vit_b32", "vit_b32_ep50", "vit_b16", "vit_b16_ep50", "vit_b16_ep100", "vit_b16_ctxv1",
              "vit_b16_ep50_ctxv1", "vit_b16_ep100_ctxv1"),
    *_configs("CoOp", "CoCoOp", "vit_b16_c4_ep10_batch1", "vit_b16_c8_ep10_batch1", "vit_b16_c16_ep10_batch1", COCOOP),
    *_configs("KgCoOp", "KgCoOp", KGCOOP, "rn50", "rn50_ep50", "rn50_ep100", "rn50_ctxv1", "rn50_ep50_ctxv1",
              "rn50_ep100_ctxv1"),
    *_configs("MaPLe", "MaPLe", MAPLE_B2N, MAPLE_XD),
    *_configs("MaPLe", "IVLP", IVLP_MAPLE, IVLP_LANG),
    *_configs("MaPLe", "VPT", VPT_CFG),
    *_configs("PromptSRC", "PromptSRC", SRC_B2N, SRC_XD, SRC_FS),
    *_configs("PromptSRC", "IVLP", IVLP_SRC),
    ConfigRow("PromptSRC", f"MaPLe/{MAPLE_B2N}", note="PromptSRC's copy trains 2 epochs but its test loads 5; the MaPLe repository's 5 is kept"),
    ConfigRow("PromptSRC", "PromptSRC/vit_b16_c2_ep5_batch4_4+4ctx_cross_datasets", ours=f"PromptSRC/{SRC_XD}",
              note="named by PromptSRC's xd scripts but not in the repository; its reproduce_xd.sh uses the ep20 file"),
    *_configs("PromptKD", "PromptKD", KD_B2N, KD_XD),
    *_configs("PromptKD", "PromptSRC", "vit_l14_c2_ep20_batch8_4+4ctx"),
    ConfigRow("PromptKD", f"PromptSRC/{SRC_FS}", ours="PromptSRC/vit_b16_c2_ep50_batch8_4+4ctx_few_shot_promptkd",
              note="PromptKD's copy (batch 8, LR 0.005, best_val on test) differs from PromptSRC's file of that name, which keeps it"),
    *_configs("PromptKD", "IVLP", "vit_b16_c2_ep20_batch8_4+4ctx"),
    *_configs("PromptKD", "MaPLe", "vit_b16_c2_ep20_batch8_2ctx"),
]  # fmt: skip


# Tools of the originals that are not train.py runs: (repository, original command line, ours)
TOOL_ROWS: list[tuple[str, str, str]] = [
    ("CoOp", "python interpret_prompt.py <prompt_learner/model.pth.tar-E> <topk>",
     "python tools/interpret_prompt.py <prompt_learner/model.pth.tar-E> <topk>"),
    ("CoOp", "bash lpclip/feat_extractor.sh, then bash lpclip/linear_probe.sh",
     "python tools/lpclip.py --root DATA --dataset-config-file ... --config-file configs/trainers/CoOp/rn50_val.yaml "
     "--seed S --output-dir DIR DATASET.NUM_SHOTS K"),
    ("KgCoOp", "ProGrad (its Dassl.ProGrad fork, LOSS.* keys)",
     "python train.py --trainer ProGrad --config-file configs/trainers/ProGrad/vit_b16_ep50_ctxv1.yaml ..."),
    ("CoOp", "python parse_test_res.py DIR [--test-log] [--ci95]", "python tools/parse_results.py DIR [--ci95]"),
]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# running the rows


class MappingError(AssertionError):
    """A row's script no longer does what the original does (or fails)."""


def dry_run(row: ScriptRow) -> list[list[str]]:
    """The ``train.py`` argument lists (after ``train.py``) that ``row.command`` prints in dry-run mode."""
    env = {**os.environ, **DRY_ENV, **row.env}
    for key in ("CFG", "LOADEP", "SUB", "W", "XD_SOURCE", "SEEDS", "LAUNCH"):
        if key not in row.env:
            env.pop(key, None)
    proc = subprocess.run(shlex.split(row.command), cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise MappingError(f"`{row.command}` failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    runs = []
    for line in proc.stdout.splitlines():
        if line.startswith("+ "):
            words = shlex.split(line[2:])
            if "train.py" in words:
                runs.append(words[words.index("train.py") + 1 :])
    return runs


def option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1] if flag in argv else ""


def check(row: ScriptRow) -> list[list[str]]:
    """Dry-run ``row`` and compare each run's output folder with the original's; returns the runs."""
    runs = dry_run(row)
    dirs = tuple(option(argv, "--output-dir") for argv in runs)
    if dirs != row.dirs:
        raise MappingError(f"`{row.command}` writes {list(dirs)}, the original writes {list(row.dirs)}")
    return runs


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The markdown of docs/upstream.md (runs every script row)."""
    lines = [
        "# The original repositories' scripts and configs, here",
        "",
        "Generated by `python tools/upstream_map.py --write docs/upstream.md` from the rows in `tools/upstream_map.py`:",
        "each original command line was run here in dry-run mode and the `train.py` runs it printed are listed",
        "(paths with `DATA=data OUTPUT=output`); each output folder is the original script's.",
        "`tests/tools/test_upstream_map.py` checks that this file is current. Do not edit it by hand.",
        "",
        "Repositories: " + "; ".join(f"**{k}** = {v}" for k, v in REPOS.items()) + ".",
        "",
        "## Scripts",
        "",
        "| repository | original command line | here | train.py runs: trainer, config, output folder | note |",
        "|---|---|---|---|---|",
    ]
    for row in SCRIPT_ROWS:
        runs = check(row)
        first = runs[0]
        shown = (f"{option(first, '--trainer')}, `{option(first, '--config-file')}`, `{option(first, '--output-dir')}`"
                 + (f" (+{len(runs) - 1} more runs)" if len(runs) > 1 else ""))  # fmt: skip
        if "--model-dir" in first:
            shown += f", eval-only from `{option(first, '--model-dir')}` epoch {option(first, '--load-epoch')}"
        elif "--eval-only" in first:
            shown += ", eval-only"
        here = f"`{row.ours}`" if row.ours else "same"
        lines.append(f"| {row.repo} | `{_cell(row.upstream)}` | {_cell(here)} | {_cell(shown)} | {_cell(row.note)} |")
    lines += [
        "",
        "## Configs (`configs/trainers/<Trainer>/<name>.yaml`)",
        "",
        "| repository | original | here | note |",
        "|---|---|---|---|",
    ]
    for config in CONFIG_ROWS:
        here = f"`{config.ours}`" if config.ours else "same"
        lines.append(f"| {config.repo} | `{config.upstream}` | {here} | {_cell(config.note)} |")
    lines += ["", "## Tools", "", "| repository | original | here |", "|---|---|---|"]
    lines += [f"| {repo} | `{_cell(upstream)}` | `{_cell(ours)}` |" for repo, upstream, ours in TOOL_ROWS]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", help="write the markdown to FILE")
    group.add_argument("--check", metavar="FILE", help="exit 1 if FILE differs from the generated markdown")
    args = parser.parse_args(argv)
    try:
        text = render()
    except MappingError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
    elif args.check:
        path = Path(args.check)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is stale: run python tools/upstream_map.py --write {path}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
