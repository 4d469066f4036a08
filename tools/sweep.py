"""Run method × datasets × seeds through the per-run scripts, then print the result table.

    python tools/sweep.py --methods promptkd coop --datasets caltech101 dtd --seeds 1 2 3
    python tools/sweep.py --methods promptkd --datasets all --dry-run          # print the commands only
    bash scripts/sweep.sh ...                                                   # the same

Each run is one call of ``scripts/<method>/<protocol script>.sh`` (the scripts a person would type), so the
output folders, per-dataset settings and paths (``DATA``, ``OUTPUT``, ``TEACHER_ROOT``) are the scripts' own.
A run whose folder holds a finished ``results.json`` is skipped; an unfinished one resumes from its last epoch
(the engine's ``model-last.pth.tar``). PromptKD's teacher (PromptSRC ViT-L/14) runs once per dataset (once for
cross-dataset / DG: the ImageNet teacher) before its students; a student whose teacher failed is not started.
When ``--opts`` set ``TRAINER.PROMPTKD.TEACHER_BANK``, the teacher's feature bank is built once per (dataset,
teacher) before the students that read it (``tools/build_teacher_bank.py`` on the first seed's exact command).
Failures do not stop the sweep; they are listed at the end and the exit status is 1.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trainers  # noqa: E402, F401  (registers the shipped trainers, so a plugin's are the new names)
from dassl.engine import TRAINER_REGISTRY  # noqa: E402
from dassl.utils.plugins import PLUGINS_ENV, PluginError, load_plugin  # noqa: E402
from tools import paper_numbers, parse_results  # noqa: E402

# The checkout this file was invoked from (not resolved: a symlinked copy runs its own scripts/ and output/)
REPO_ROOT = Path(os.path.abspath(__file__)).parents[1]
SCRIPTS = REPO_ROOT / "scripts"
PROTOCOLS = ("base2new", "xd", "dg", "fewshot")
DATASET_SETS = {
    "base2new": "imagenet caltech101 oxford_pets stanford_cars oxford_flowers food101 fgvc_aircraft sun397 dtd eurosat ucf101",
    "xd": "caltech101 oxford_pets stanford_cars oxford_flowers food101 fgvc_aircraft sun397 dtd eurosat ucf101",
    "dg": "imagenetv2 imagenet_sketch imagenet_a imagenet_r",
}
DATASET_SETS["fewshot"] = DATASET_SETS["base2new"]
# The one-run scripts of a method whose original script of the protocol's name has another signature (KgCoOp's
# base2new_*.sh take <dataset> <weight> and loop the seeds; its xd_train.sh is a 4-shot loop)
ONE_RUN_SCRIPTS = {
    "kgcoop": {"base2new_train": "base2new_train_seed", "base2new_test": "base2new_test_seed", "xd_train": "xd_train_imagenet"},
}


def _script(method: str, protocol_script: str) -> str:
    """``<method>/<script>.sh`` that runs one dataset x seed of the protocol."""
    return f"{method}/{ONE_RUN_SCRIPTS.get(method, {}).get(protocol_script, protocol_script)}.sh"
assert len(DATASET_SETS["base2new"].split()) == len(paper_numbers.BASE_TO_NOVEL_DATASETS)

# Methods with a recipe of their own below (a teacher first, a single zero-shot script); every other method is a
# folder scripts/<method>/ with the protocol's <protocol>_train.sh / _test.sh (base2new, xd) or fewshot.sh, found
# by ``discover_methods``: adding a method to the sweep is adding its scripts.
RECIPES = ("zsclip", "promptkd")
PLUGIN_SCRIPTS = "plugin"  # scripts/plugin/: the protocol scripts of a --plugin method (its trainer and yaml by env)
GENERIC_SCRIPTS = ("base2new_train.sh", "xd_train.sh", "fewshot.sh")


def discover_methods(scripts: Path = SCRIPTS) -> tuple[str, ...]:
    """The sweep's methods: the recipes plus every scripts/<method>/ folder that has a protocol script."""
    found = {p.name for p in scripts.iterdir() if p.is_dir() and p.name != PLUGIN_SCRIPTS
             and any((p / name).is_file() for name in GENERIC_SCRIPTS)}  # fmt: skip
    found |= {m for m in ONE_RUN_SCRIPTS if (scripts / m).is_dir()}
    order = {m: i for i, m in enumerate(("zsclip", "coop", "cocoop", "kgcoop", "maple", "ivlp", "vpt", "promptsrc"))}
    return tuple(sorted(found | set(RECIPES), key=lambda m: (m == "promptkd", order.get(m, len(order)), m)))

METHODS = discover_methods()


@dataclass
class Step:
    """One script call; ``needs`` names the step (a teacher) that must have succeeded first."""

    script: str  # relative to scripts/
    args: list[str]
    teacher: bool = False
    needs: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # a plugin method's TRAINER / CONFIG_FILE
    bank: bool = False  # the script's run with LAUNCH=tools/build_teacher_bank.py: builds its teacher bank only
    key: str = field(init=False)

    def __post_init__(self) -> None:
        trainer = [f"{k}={v}" for k, v in self.env.items() if k == "TRAINER"]
        self.key = " ".join(["[teacher bank]"] * self.bank + trainer + [self.script, *self.args])

    def command(self, opts: list[str]) -> list[str]:
        return ["bash", f"scripts/{self.script}", *self.args, *opts]


def uses_teacher_bank(opts: list[str]) -> bool:
    """Whether the student overrides enable PromptKD's teacher bank (the last TEACHER_BANK value is non-empty)."""
    values = [value for key, value in zip(opts[::2], opts[1::2]) if key == "TRAINER.PROMPTKD.TEACHER_BANK"]
    return bool(values and values[-1])


def promptkd_students(script: str, datasets: list[str], seeds: list[int], teacher: Step, bank: bool) -> list[Step]:
    """A dataset's students after its teacher; with a bank, first one step that builds the (dataset, teacher)
    bank that all its seeds then read (the first seed's run, launched as tools/build_teacher_bank.py)."""
    steps: list[Step] = []
    for dataset in datasets:
        needs = teacher.key
        if bank:
            steps.append(Step(script, [dataset, str(seeds[0])], needs=needs, bank=True))
            needs = steps[-1].key
        steps += [Step(script, [dataset, str(s)], needs=needs) for s in seeds]
    return steps


def plan(
    methods: list[str], protocol: str, datasets: list[str], seeds: list[int], bank: bool = False,
    plugins: dict[str, str] | None = None,
) -> list[Step]:
    """The script calls of a sweep, in order: teachers before their students, each train before its test
    (``bank``: PromptKD's teacher bank once per dataset and teacher, before its students; ``plugins``: {trainer
    name: its yaml} of methods loaded with ``--plugin``, run by scripts/plugin/)."""
    steps: list[Step] = []
    plugins = plugins or {}
    for method in methods:
        if method in plugins:
            env = {"TRAINER": method, "CONFIG_FILE": plugins[method]}
            if protocol not in ("base2new", "xd"):
                raise ValueError(f"{method}: a plugin method runs the base2new and xd protocols (scripts/plugin/)")
            if protocol == "base2new":
                for dataset in datasets:
                    for seed in seeds:
                        train = Step(f"{PLUGIN_SCRIPTS}/base2new_train.sh", [dataset, str(seed)], env=env)
                        steps += [train, Step(f"{PLUGIN_SCRIPTS}/base2new_test.sh", [dataset, str(seed)],
                                              needs=train.key, env=env)]  # fmt: skip
            else:  # trained once on the source (XD_SOURCE, default ImageNet), evaluated on every dataset
                for seed in seeds:
                    train = Step(f"{PLUGIN_SCRIPTS}/xd_train.sh", [str(seed)], env=env)
                    steps += [train, *(Step(f"{PLUGIN_SCRIPTS}/xd_test.sh", [d, str(seed)], needs=train.key, env=env)
                                       for d in datasets)]  # fmt: skip
        elif method == "promptkd":
            if protocol == "base2new":
                for dataset in datasets:
                    teacher = Step("promptsrc/base2new_train_teacher.sh", [dataset], teacher=True)
                    steps.append(teacher)
                    steps += promptkd_students("promptkd/base2new_train.sh", [dataset], seeds, teacher, bank)
            elif protocol in ("xd", "dg"):
                teacher = Step("promptsrc/xd_train_teacher.sh", [], teacher=True)
                steps.append(teacher)
                script = "promptkd/xd_train.sh" if protocol == "xd" else "promptkd/dg_train.sh"
                steps += promptkd_students(script, datasets, seeds, teacher, bank)
            else:
                raise ValueError("PromptKD has no few-shot protocol (its student trains on unlabeled images)")
        elif method == "zsclip":
            if protocol == "base2new":
                steps += [Step("zsclip/base2new.sh", [d]) for d in datasets]
            elif protocol in ("xd", "dg"):
                steps += [Step("zsclip/zeroshot.sh", [d]) for d in datasets]
            else:
                raise ValueError("zero-shot CLIP has no few-shot protocol; use --protocol base2new, xd or dg")
        elif protocol == "base2new":
            for dataset in datasets:
                for seed in seeds:
                    train = Step(_script(method, "base2new_train"), [dataset, str(seed)])
                    steps += [train, Step(_script(method, "base2new_test"), [dataset, str(seed)], needs=train.key)]
        elif protocol in ("xd", "dg"):
            for seed in seeds:
                train = Step(_script(method, "xd_train"), [str(seed)])
                steps.append(train)
                steps += [Step(_script(method, "xd_test"), [d, str(seed)], needs=train.key) for d in datasets]
        elif (SCRIPTS / method / "fewshot.sh").is_file():
            steps += [Step(f"{method}/fewshot.sh", [d, str(s)]) for d in datasets for s in seeds]
        else:
            raise ValueError(f"{method} has no few-shot script (scripts/{method}/fewshot.sh)")
    for step in steps:
        if not (SCRIPTS / step.script).is_file():
            raise ValueError(f"scripts/{step.script} does not exist (no such protocol script for this method)")
    return steps


def plugin_methods(files: list[str], configs: list[str]) -> dict[str, str]:
    """{trainer name: yaml} of the trainers each ``--plugin`` file registers (loading it registers them)."""
    if len(configs) != len(files):
        raise ValueError(f"give one --plugin-config per --plugin ({len(files)} plugins, {len(configs)} configs)")
    methods: dict[str, str] = {}
    for file, config in zip(files, configs):
        if not Path(config).is_file():
            raise ValueError(f"--plugin-config {config}: no such file")
        before = set(TRAINER_REGISTRY.registered_names())
        load_plugin(str(Path(file).resolve()))
        added = sorted(set(TRAINER_REGISTRY.registered_names()) - before)
        if not added:
            raise ValueError(f"--plugin {file} registers no trainer (expected a @TRAINER_REGISTRY.register() class)")
        methods.update({name: str(Path(config).resolve()) for name in added})
    return methods


def bank_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of a teacher-bank step: the script's train.py call is launched as build_teacher_bank.py
    (under the user's LAUNCH, e.g. torchrun, if set: the shards are then split over its processes)."""
    launcher = env.get("LAUNCH") or shlex.quote(env.get("PYTHON", sys.executable))
    return {**env, "LAUNCH": f"{launcher} tools/build_teacher_bank.py"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", required=True, metavar="METHOD",
                        help=f"one or more of: {' '.join(METHODS)}, or a --plugin method's trainer name")  # fmt: skip
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE",
                        help="a method file of your own (as train.py --plugin); repeatable")  # fmt: skip
    parser.add_argument("--plugin-config", action="append", default=[], metavar="YAML",
                        help="the yaml of each --plugin method, in the same order")  # fmt: skip
    parser.add_argument("--protocol", choices=PROTOCOLS, default="base2new", help="default: base2new")
    parser.add_argument("--datasets", nargs="+", required=True,
                        help="configs/datasets stems (caltech101 ...) or 'all' (the protocol's benchmark list)")  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3], help="default: 1 2 3")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY VALUE",
                        help="config overrides appended to every student / method run")  # fmt: skip
    parser.add_argument("--teacher-opts", nargs="*", default=[], metavar="KEY VALUE",
                        help="config overrides appended to every teacher run")  # fmt: skip
    parser.add_argument("--data", help="dataset root (default: $DATA, else ./data)")
    parser.add_argument("--output", help="output root (default: $OUTPUT, else ./output)")
    parser.add_argument("--teacher-root", help="teacher folder (default: $TEACHER_ROOT, else ./teacher_model)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands (and what would be skipped)")
    parser.add_argument("--force", action="store_true", help="run finished runs again (FORCE=1 for the scripts)")
    parser.add_argument("--format", choices=parse_results.FORMATS, default="table", help="the final table's format")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    datasets = DATASET_SETS[args.protocol].split() if args.datasets == ["all"] else args.datasets
    unknown = [d for d in datasets if not (REPO_ROOT / "configs" / "datasets" / f"{d}.yaml").is_file()]
    if unknown:
        print(f"Error: unknown dataset(s) {', '.join(unknown)}: expected configs/datasets/<name>.yaml", file=sys.stderr)
        return 2
    for opts in (args.opts, args.teacher_opts):
        if len(opts) % 2:
            print(f"Error: overrides come in KEY VALUE pairs, got an odd number: {' '.join(opts)}", file=sys.stderr)
            return 2
    try:
        plugins = plugin_methods(args.plugin, args.plugin_config)
        unknown = [m for m in args.methods if m not in METHODS and m not in plugins]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(unknown)}: expected {', '.join(METHODS)}"
                             f"{', or a --plugin trainer: ' + ', '.join(plugins) if plugins else ''}")  # fmt: skip
        steps = plan(args.methods, args.protocol, datasets, args.seeds, bank=uses_teacher_bank(args.opts),
                     plugins=plugins)
    except (ValueError, PluginError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2

    env = dict(os.environ)
    if args.plugin:
        known = [p for p in env.get(PLUGINS_ENV, "").split(os.pathsep) if p]
        env[PLUGINS_ENV] = os.pathsep.join([*known, *(str(Path(p).resolve()) for p in args.plugin)])
    for name, value in (("DATA", args.data), ("OUTPUT", args.output), ("TEACHER_ROOT", args.teacher_root)):
        if value:
            env[name] = str(Path(value).resolve())
    env.setdefault("PYTHON", sys.executable)
    if args.dry_run:
        env["DRY_RUN"] = "1"
    if args.force:
        env["FORCE"] = "1"
    output = Path(env.get("OUTPUT", REPO_ROOT / "output"))

    failed: list[str] = []
    start = time.time()
    for index, step in enumerate(steps, start=1):
        command = step.command(args.teacher_opts if step.teacher else args.opts)
        print(f"\n[{index}/{len(steps)}] {shlex.join(command)}", flush=True)
        if step.needs in failed:
            print(f"  not started: it needs {step.needs}, which failed", flush=True)
            failed.append(step.key)
            continue
        step_env = bank_env(env) if step.bank else env
        result = subprocess.run(command, cwd=REPO_ROOT, env={**step_env, **step.env}, check=False)
        if result.returncode != 0:
            print(f"  FAILED (exit status {result.returncode})", flush=True)
            failed.append(step.key)

    print(f"\nSweep: {len(steps)} script calls, {len(failed)} failed, {time.time() - start:.0f} s.")
    for key in failed:
        print(f"  failed: {key}")
    if args.dry_run:
        return 0
    print(f"\nResults under {output}:\n")
    root = output / "base2new" if args.protocol == "base2new" else output
    if root.is_dir():
        parse_results.main([str(root), "--seeds", *map(str, args.seeds), "--format", args.format])
        if len(args.methods) > 1 and args.format in ("table", "markdown"):
            print()
            parse_results.main([str(root), "--summary", "--format", args.format])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
