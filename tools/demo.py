"""Run the whole toolkit end to end on CPU, in a few minutes, in a world where its numbers mean something.

    python tools/demo.py [--out output/demo] [--device cpu|cuda] [--epochs 10] [--seed 1] [--backbones miniworld|random]
                         [--verbose]

``--backbones miniworld`` (the default) writes the MiniWorld downstream benchmark (``datasets.miniworld``:
named shapes such as "red striped star" on textured, noisy backgrounds; 10 base + 10 novel classes) and
pretrains two miniature CLIPs on the world's *pretraining* domain over all of its class names
(``tools/pretrain_clip.py``; cached by content, so later runs skip it): a teacher-size model (finer patches,
deeper text tower) and a smaller student-size one, in OpenAI's checkpoint format. ``--backbones random`` keeps
the smoke run on the coloured-shapes demo data with tiny random-weight CLIPs, whose numbers only show that the
pipeline works. Then it runs the real entry point (``train.py``'s code path, the same one the scripts use):

  1. zero-shot CLIP (student backbone), base and novel classes;
  2. CoOp on 16 shots of the base classes, evaluated on base and novel;
  3. stage 1, the PromptSRC teacher on 16 shots of the base classes, evaluated on base and novel;
  4. stage 2, the PromptKD student distilled from that teacher on the unlabeled train images of all classes;

and prints base / novel / HM per method, where the runs and checkpoints are, and writes a bar chart and the
training curves (``results.png``, ``results_curves.png``, as ``tools/plot_results.py`` names them; needs
matplotlib). The console tells the story (one line per epoch and method, with a progress bar in a terminal);
every run's full output (config, a line per batch) is in its ``log.txt``; ``--verbose`` prints it all. With real
weights (``python tools/download_clip.py ViT-B/16 ViT-L/14``) and real data (README, "Preparing the datasets") the
scripts under ``scripts/`` run the papers' protocols.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tabulate import tabulate  # noqa: E402

import train  # noqa: E402
from dassl.evaluation.protocol import harmonic_mean  # noqa: E402
from dassl.evaluation.results import read_results  # noqa: E402
from promptkd.datasets.demo import make_demo_dataset  # noqa: E402
from promptkd.datasets.miniworld import MiniWorldConfig, make_miniworld_dataset  # noqa: E402
from tools import pretrain_clip  # noqa: E402
from tools.make_tiny_clip import make_tiny_clip, save_tiny_clip, tiny_clip_filename  # noqa: E402
from trainers.backbone import BackboneMismatchWarning  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE_SIZE = 112  # random backbones: a multiple of both patch sizes (14 and 16), like 224
CONFIGS = REPO_ROOT / "configs"
# output/demo in a checkout; installed (promptkd-demo), output/demo under the current folder
DEFAULT_OUT = REPO_ROOT / "output" / "demo" if (REPO_ROOT / "pyproject.toml").is_file() else Path("output") / "demo"
BACKBONES = ("miniworld", "random")
# The student's learning rate (upstream: 0.005, for ViT-B/16 at 224 px, after a warm-up epoch at 1e-5). On the
# miniature student (2 x 2 patches, so its 4 prompt tokens are almost half of every block's input) any step larger
# than the warm-up's is unstable: at 0.005 every seed collapsed after the warm-up and deployed it; at 2e-4 and 5e-5
# the accuracy still fell 15-25 points at the second epoch on some seeds and climbed back only partly. At the
# warm-up's own 1e-5 no seed fell, and seeds 1-3 all end above the student's zero-shot on base and novel (README,
# "The demo").
KD_LR = "0.00001"



@dataclass
class TinyAssets:
    """The dataset root and the tiny CLIP checkpoints of one work dir, and what the runs need to know of them."""

    data: Path
    teacher_clip: Path
    student_clip: Path
    cache: Path  # PromptKD's class-vector cache
    dataset: str = "demo"  # configs/datasets/<dataset>.yaml, the folder under data/
    image_size: int = IMAGE_SIZE
    teacher_depth: int = 3  # prompt depth of the teacher (both towers)
    student_depth: tuple[int, int] = (3, 2)  # (vision, text) depth of the student-size backbone

    @property
    def random(self) -> bool:
        return self.dataset == "demo"


def prepare(
    out: Path, backbones: str = "random", clip_cache: Path | None = None,
    recipes: dict[str, pretrain_clip.ClipRecipe] | None = None,
) -> TinyAssets:  # fmt: skip
    """Data + teacher/student CLIP checkpoints under ``out`` (reused when present).

    ``random``: the coloured-shapes demo data and tiny random-weight CLIPs; ``miniworld``: the MiniWorld benchmark
    and the miniature CLIPs pretrained on its pretraining domain (cached by content in ``clip_cache``;
    ``recipes``: other pretraining recipes than ``pretrain_clip.MINIWORLD_CLIPS``, e.g. shorter ones in tests).
    """
    data = out / "data"
    if backbones == "miniworld":
        recipes = recipes or pretrain_clip.MINIWORLD_CLIPS
        teacher, student = recipes["teacher"], recipes["student"]
        print(f"Writing the MiniWorld benchmark to {data / 'miniworld'} (unless it is there)")
        make_miniworld_dataset(data, MiniWorldConfig(image_size=teacher.image_size))
        paths = pretrain_clip.pretrain_miniworld_clips(clip_cache or out / "clip", recipes)
        return TinyAssets(
            data, paths["teacher"], paths["student"], out / "cache", dataset="miniworld",
            image_size=teacher.image_size, teacher_depth=min(teacher.vision_layers, teacher.text_layers),
            student_depth=(student.vision_layers, student.text_layers),
        )  # fmt: skip
    if not (data / "demo" / "split_demo.json").is_file():
        print(f"Writing the demo dataset to {data / 'demo'}")
        make_demo_dataset(data)
    clip_dir = out / "clip"
    paths = {}
    for kind, extra in (("teacher", {"layers": 3}), ("student", {"layers": 3, "text_layers": 2})):
        path = clip_dir / tiny_clip_filename(kind)
        if not path.is_file():
            print(f"Writing a tiny random-weight {kind} CLIP checkpoint to {path}")
            save_tiny_clip(make_tiny_clip(kind, image_size=IMAGE_SIZE, seed=1, **extra), path)
        paths[kind] = path
    return TinyAssets(data, paths["teacher"], paths["student"], out / "cache")


def common_opts(device: str = "cpu", image_size: int = IMAGE_SIZE) -> list[str]:
    return [
        "INPUT.SIZE", f"({image_size}, {image_size})",
        "DATALOADER.NUM_WORKERS", "0",
        "USE_CUDA", "True" if device == "cuda" else "False",
        "TRAIN.PRINT_FREQ", "1000",
    ]  # fmt: skip


def teacher_opts(assets: TinyAssets, epochs: int, device: str = "cpu") -> list[str]:
    """Overrides that make a PromptSRC teacher run (stage 1) fit the tiny ViT-L/14-shaped checkpoint."""
    depth = str(assets.teacher_depth)
    return [
        *common_opts(device, assets.image_size), "OPTIM.MAX_EPOCH", str(epochs),
        "MODEL.BACKBONE.PATH", str(assets.teacher_clip),
        "TRAINER.PROMPTSRC.PREC", "fp32", "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", depth,
        "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", depth, "TRAINER.PROMPTSRC.GPA_MEAN", str(max(1, epochs - 1)),
        "TRAINER.PROMPTSRC.GPA_STD", "1",
    ]  # fmt: skip


def student_opts(assets: TinyAssets, epochs: int, device: str = "cpu") -> list[str]:
    """Overrides that make any ViT-B/16 method (baselines, the PromptKD student) fit the tiny checkpoints.

    Prompt depths are cut to the tiny towers (``assets.student_depth``) and every method runs in fp32.
    """
    vision, text = assets.student_depth
    both = str(min(vision, text))
    return [
        *common_opts(device, assets.image_size), "OPTIM.MAX_EPOCH", str(epochs),
        "MODEL.BACKBONE.PATH", str(assets.student_clip),
        "TRAINER.COOP.PREC", "fp32", "TRAINER.COCOOP.PREC", "fp32", "TRAINER.MAPLE.PREC", "fp32",
        "TRAINER.IVLP.PREC", "fp32", "TRAINER.VPT.PREC", "fp32", "TRAINER.PROMPTSRC.PREC", "fp32",
        "TRAINER.PROMPTKD.PREC", "fp32", "TRAINER.MAPLE.PROMPT_DEPTH", both,
        "TRAINER.IVLP.PROMPT_DEPTH_TEXT", both, "TRAINER.IVLP.PROMPT_DEPTH_VISION", both,
        "TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", str(text), "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", str(vision),
        "TRAINER.PROMPTSRC.GPA_MEAN", str(max(1, epochs - 1)), "TRAINER.PROMPTSRC.GPA_STD", "1",
        "TRAINER.PROMPTKD.PROMPT_DEPTH_VISION", str(vision),
        "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH", str(assets.teacher_clip),
        "TRAINER.PROMPTKD.CLASS_VECTOR_CACHE", str(assets.cache),
    ]  # fmt: skip


class Demo:
    def __init__(
        self, out: Path, device: str, epochs: int, backbones: str = "random", seed: int = 1,
        clip_cache: Path | None = None, recipes: dict[str, pretrain_clip.ClipRecipe] | None = None,
        verbose: bool = False,
    ) -> None:  # fmt: skip
        self.out = out
        self.epochs = epochs
        self.device = device
        self.seed = seed
        self.console_flag = "--verbose" if verbose else "--quiet"  # train.py's console level for every run
        self.assets = prepare(out, backbones, clip_cache, recipes)

    def argv(self, trainer: str, config: str, out: str, *opts: str, flags: tuple[str, ...] = ()) -> list[str]:
        """The ``train.py`` command line of one demo run (output under ``<out>/runs/<out>``)."""
        return [
            "--root", str(self.assets.data), "--seed", str(self.seed), "--trainer", trainer,
            "--dataset-config-file", str(CONFIGS / "datasets" / f"{self.assets.dataset}.yaml"),
            "--config-file", str(CONFIGS / "trainers" / config),
            "--output-dir", str(self.out / "runs" / out), self.console_flag, *flags, *opts,
        ]  # fmt: skip

    def run(self, trainer: str, config: str, out: str, *opts: str, flags: tuple[str, ...] = ()) -> dict:
        """``train.py`` in-process (a finished run is left as it is); returns the run's results.json."""
        train.run(train.build_parser().parse_args(self.argv(trainer, config, out, *opts, flags=flags)))
        return read_results(self.out / "runs" / out / "results.json")

    def zero_shot(self, teacher: bool = False) -> tuple[float, float]:
        """Zero-shot CLIP with the student-size backbone (or the teacher-size one) on base and novel."""
        if teacher:
            opts = [*student_opts(self.assets, self.epochs, self.device), "MODEL.BACKBONE.PATH",
                    str(self.assets.teacher_clip), "MODEL.BACKBONE.NAME", "ViT-L/14"]  # fmt: skip
        else:
            opts = student_opts(self.assets, self.epochs, self.device)
        name = "ZeroshotCLIP_teacher" if teacher else "ZeroshotCLIP"
        acc = [
            self.run("ZeroshotCLIP", "CoOp/vit_b16.yaml", f"{name}/test_{sub}", *opts,
                     "DATASET.SUBSAMPLE_CLASSES", sub, flags=("--eval-only",))[role]["accuracy"]
            for sub, role in (("base", "base"), ("new", "novel"))
        ]  # fmt: skip
        return acc[0], acc[1]

    def base_to_novel(self, trainer: str, config: str, name: str, opts: list[str]) -> tuple[float, float]:
        """Train on 16 shots of the base classes, then evaluate the saved model on the novel classes."""
        train_dir = f"{name}/train_base"
        shots = ("DATASET.NUM_SHOTS", "16")
        base = self.run(trainer, config, train_dir, *opts, *shots, "DATASET.SUBSAMPLE_CLASSES", "base")
        novel = self.run(
            trainer, config, f"{name}/test_new", *opts, *shots, "DATASET.SUBSAMPLE_CLASSES", "new",
            flags=("--eval-only", "--model-dir", str(self.out / "runs" / train_dir), "--load-epoch", str(self.epochs)),
        )  # fmt: skip
        return base["base"]["accuracy"], novel["novel"]["accuracy"]

    def coop(self) -> tuple[float, float]:
        opts = [*student_opts(self.assets, self.epochs, self.device), "TRAINER.COOP.CTX_INIT", "a photo of a",
                "OPTIM.LR", "0.02"]  # fmt: skip
        return self.base_to_novel("CoOp", "CoOp/vit_b16.yaml", "CoOp", opts)

    def teacher(self) -> tuple[float, float]:
        opts = teacher_opts(self.assets, self.epochs, self.device)
        return self.base_to_novel("PromptSRC", "PromptSRC/vit_l14_c2_ep20_batch8_4+4ctx.yaml", "PromptSRC_teacher", opts)

    def teacher_checkpoint(self) -> Path:
        return self.out / "runs" / "PromptSRC_teacher" / "train_base" / "VLPromptLearner" / f"model.pth.tar-{self.epochs}"

    def student_checkpoint(self) -> Path:
        return self.out / "runs" / "PromptKD" / f"seed_{self.seed}" / "VLPromptLearner" / "model-best.pth.tar"

    def promptkd(self, *extra: str, out: str = "", flags: tuple[str, ...] = ()) -> tuple[float, float]:
        """The student distilled from ``teacher()``'s checkpoint; ``extra``: more KEY VALUE overrides."""
        out = out or f"PromptKD/seed_{self.seed}"
        teacher_dir = self.out / "runs" / "PromptSRC_teacher" / "train_base" / "VLPromptLearner"
        results = self.run(
            "PromptKD", "PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml", out,
            *student_opts(self.assets, self.epochs, self.device), "DATASET.NUM_SHOTS", "0",
            "TRAINER.MODAL", "base2novel", "TRAINER.PROMPTKD.TEACHER_CKPT", str(teacher_dir),
            "TRAINER.PROMPTKD.KD_WEIGHT", "1000.0", "OPTIM.LR", KD_LR, *extra, flags=flags,
        )  # fmt: skip
        return results["base"]["accuracy"], results["novel"]["accuracy"]


# The table's method names, by the run folder each method writes under runs/ (legends of the plots).
METHOD_FOLDERS = {
    "ZeroshotCLIP": "Zero-shot CLIP",
    "CoOp": "CoOp",
    "PromptSRC_teacher": "PromptSRC teacher (stage 1)",
    "PromptKD": "PromptKD student (stage 2)",
}
STEP_PLANS = {  # what each step is about to do, said before it runs
    "Zero-shot CLIP": "the student backbone with hand-written prompts, no training",
    "Zero-shot CLIP, teacher size": "the teacher backbone with hand-written prompts, no training",
    "CoOp": "learned text prompts, 16 shots of the base classes, then the novel classes",
    "PromptSRC teacher (stage 1)": "deep vision + language prompts on the ViT-L/14-shaped teacher, 16 base-class shots",
    "PromptKD student (stage 2)": "distilled from the teacher on the unlabeled images of all classes",
}


def write_plots(out: Path) -> list[str]:
    """The bar chart and training curves of the demo runs (lines to print), or how to get them."""
    try:
        from tools import plot_results

        experiments = plot_results.load_experiments([out / "runs"])
        for experiment in experiments:
            experiment["label"] = METHOD_FOLDERS.get(experiment["label"].split("/")[0], experiment["label"])
        bars = plot_results.plot_bars(experiments, out / "results.png")
        runs = plot_results.collect_curves(out / "runs")
        for run in runs:
            run.label = METHOD_FOLDERS.get(run.label.split("/")[0], run.label)
        curves = plot_results.plot_curves(runs, plot_results.curves_path(out / "results.png"))
    except plot_results.MatplotlibMissing:
        return ["Plots: matplotlib is not installed (pip install matplotlib), so no PNG was written."]
    lines = [f"Plot of base / novel / HM: {bars}"]
    if curves is not None:
        lines.append(f"Training curves: {curves}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="work dir (default: output/demo)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to run (default: cpu)")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs of each method (default: 10)")
    parser.add_argument("--verbose", action="store_true",
                        help="print every run's full output (config dumps, a line per batch), as train.py --verbose")
    parser.add_argument("--seed", type=int, default=1, help="seed of the runs (few-shot picks, init; default: 1)")
    parser.add_argument("--backbones", choices=BACKBONES, default="miniworld",
                        help="miniworld: pretrained miniature CLIPs on the MiniWorld (default); "
                        "random: tiny random-weight CLIPs on the demo data (a smoke run)")  # fmt: skip
    parser.add_argument("--clip-cache", type=Path, default=None, metavar="DIR",
                        help="cache of the pretrained miniature CLIPs (default: OUT/clip)")  # fmt: skip
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    world = ("tiny random-weight CLIPs (the numbers only show that the pipeline works)" if args.backbones == "random"
             else "miniature CLIPs pretrained on the MiniWorld")  # fmt: skip
    print(f"PromptKD demo in {out}: {args.epochs} epochs per method, on {args.device}, with {world}.")
    demo = Demo(out, args.device, args.epochs, args.backbones, args.seed, args.clip_cache, verbose=args.verbose)
    # The miniature checkpoints stand in for ViT-B/16 and ViT-L/14 on purpose: say so once, not in every run
    # (each run's results.json still records the architecture it loaded).
    print(f"The {'random' if demo.assets.random else 'miniature'} CLIPs stand in for ViT-B/16 (student) and ViT-L/14 "
          "(teacher); each run loads them by MODEL.BACKBONE.PATH and records their real shapes.")  # fmt: skip

    steps = [
        ("Zero-shot CLIP", demo.zero_shot),
        *([("Zero-shot CLIP, teacher size", lambda: demo.zero_shot(teacher=True))] if not demo.assets.random else []),
        ("CoOp", demo.coop),
        ("PromptSRC teacher (stage 1)", demo.teacher),
        ("PromptKD student (stage 2)", demo.promptkd),
    ]
    rows = []
    for name, step in steps:
        print(f"\n==> {name}: {STEP_PLANS[name]}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BackboneMismatchWarning)
            base, novel = step()
        rows.append([name, base, novel, harmonic_mean(base, novel)])
        print(f"    base {base:.2f}  novel {novel:.2f}  HM {rows[-1][3]:.2f}")

    print("\n" + tabulate(rows, headers=["method", "base", "novel", "HM"], floatfmt=".2f"))
    print("base / novel: accuracy (%) on the test images of the base / novel classes. PromptKD picks its epoch on "
          "the base-class test images (selection split, as the original).")  # fmt: skip
    print(f"\nFinished in {time.time() - start:.0f} s.")
    print(f"Runs (log.txt, results.json, config.yaml, checkpoints): {out / 'runs'}")
    print(f"Checkpoints of the teacher and the student: {demo.teacher_checkpoint()}, {demo.student_checkpoint()}")
    print(f"All runs as a table (seeds, selection rule, CSV/JSON): python tools/parse_results.py {out / 'runs'}")
    for line in write_plots(out):
        print(line)
    clips = f"{demo.assets.teacher_clip.parent}" if demo.assets.random else (
        f"{demo.assets.teacher_clip}, {demo.assets.student_clip}")  # fmt: skip
    print(f"Demo data: {demo.assets.data / demo.assets.dataset}   tiny CLIP checkpoints: {clips}")
    real = (
        "For real numbers, download OpenAI's weights (python tools/download_clip.py ViT-B/16 ViT-L/14), "
        "prepare a dataset (python tools/prepare_data.py --root DATA caltech101) and run the scripts under scripts/."
    )
    if demo.assets.random:
        print("\nNote: the backbones here are tiny random-weight CLIPs, so the accuracies only show that the "
              "pipeline runs. " + real)  # fmt: skip
    else:
        print("\nNote: MiniWorld's CLIPs were pretrained here on the world's pretraining domain (all class names); "
              "the table is measured on its shifted downstream domain. " + real)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
