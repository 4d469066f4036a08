"""Plot the results under output roots: grouped bars per dataset, and the training curves of the runs.

    python tools/plot_results.py output/base2new --out results.png
    python tools/plot_results.py output/PromptKD output/CoOp --out b2n.png --curves curves.png --title "B2N, 3 seeds"

The numbers come from ``tools/parse_results.py`` (``collect`` + ``to_dict``), so the bars are exactly the table's
mean rows:

* base-to-novel experiments: one subplot each for base, novel and HM; x = datasets (+ "Average" when the
  experiment has one), one bar colour per experiment (method), ± std over seeds as error bars when n > 1 (for HM:
  the bar is the HM of the averaged base and novel, the error bar the std of the per-seed HMs, as in the table);
* accuracy experiments (cross-dataset, domain generalisation, few-shot): one subplot with the accuracy.

The curves (a second PNG: ``--curves``, or ``<out stem>_curves.png`` next to ``--out`` when any run has per-epoch
data) show, per run folder, the per-epoch training loss(es) from ``log.txt`` on a log scale (so a distillation
loss in the hundreds does not flatten a cross-entropy near 1) and the per-epoch accuracy on the model-selection
split from ``results.json`` (the log's ``Evaluate on the *val* set`` results for runs without one; with
``DATASET.VAL_SOURCE test``, the default as in the original code, those are test images). Legends name the
method (the trainer, as the tables do), with the experiment or run folder only where two share a trainer. matplotlib is optional:
``pip install -e ".[plots]"``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dassl.evaluation.results import read_results  # noqa: E402
from tools.parse_results import collect, find_run_dirs, parse_log, read_logs, to_dict  # noqa: E402

MISSING_MATPLOTLIB = 'matplotlib is not installed: pip install matplotlib (or pip install -e ".[plots]")'
B2N_METRICS = ("base", "novel", "HM")
ACCURACY_METRICS = ("accuracy",)
AVERAGE = "Average"
DPI = 100
TRAIN_ACCURACY = ("acc",)  # MetricMeter names that are training accuracies, not losses (CoOp & co. log "acc")


class MatplotlibMissing(ImportError):
    """Raised (and turned into exit code 2 by ``main``) when the optional matplotlib is absent."""


def _pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend, imported only when a plot is drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MatplotlibMissing(MISSING_MATPLOTLIB) from err
    return plt


# ------------------------------------------------------------------------------------------------------ bars
def root_labels(roots: list[Path | str]) -> list[str]:
    """Shortest trailing part of each root's path that tells the roots apart (``a/runs`` vs ``b/runs``)."""
    paths = [Path(r).resolve() for r in roots]
    for depth in range(1, max(len(p.parts) for p in paths) + 1):
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [p.as_posix() for p in paths]


def load_experiments(roots: list[Path | str]) -> list[dict]:
    """``to_dict`` of every experiment under each root, with a ``label`` for the legend that is unique.

    The label is the experiment name (its output path without dataset / seed / phase folders); with several
    roots it is prefixed with the root (``root_labels``), so the same config under two roots stays apart.
    """
    experiments: list[dict] = []
    seen: set[str] = set()
    for root, prefix in zip(roots, root_labels(roots)):
        root = Path(root).resolve()
        for experiment in collect(root):
            data = to_dict(experiment)
            name = data["name"]  # the root's own name when the root is the experiment folder
            label = f"{prefix}/{name}" if len(roots) > 1 else name
            unique, k = label, 2
            while unique in seen:
                unique, k = f"{label} ({k})", k + 1
            seen.add(unique)
            data["label"] = unique
            experiments.append(data)
    for protocol in {e["protocol"] for e in experiments}:  # one bar row per protocol: unique within it
        chosen = [e for e in experiments if e["protocol"] == protocol]
        for experiment, legend in zip(chosen, legend_labels([(e.get("trainer"), e["label"]) for e in chosen])):
            experiment["legend"] = legend
    return experiments


def legend_labels(entries: list[tuple[str | None, str]]) -> list[str]:
    """Legend text for ``(method, unique label)`` pairs: the method alone when no other entry has it, else
    ``method (label)``; the label alone when the method is unknown."""
    counts: dict[str | None, int] = {}
    for method, _ in entries:
        counts[method] = counts.get(method, 0) + 1
    return [label if not method else method if counts[method] == 1 else f"{method} ({label})" for method, label in entries]


def curves_path(out: Path | str) -> Path:
    """Where the curves go next to the bar chart ``out``: ``<out stem>_curves.png`` (also the demo's name)."""
    out = Path(out)
    return out.with_name(f"{out.stem}_curves.png")


@dataclass
class BarData:
    """What one row of bar subplots shows: heights and error bars per metric, method and x group."""

    protocol: str  # base2novel | accuracy
    metrics: tuple[str, ...]
    groups: list[str]  # datasets in the order first seen, then "Average" when any method has one
    methods: list[str]  # experiment labels, one bar colour each
    heights: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # metric -> method -> group
    errors: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # std, only where n > 1
    average_datasets: dict[str, list[str]] = field(default_factory=dict)  # method -> datasets in its Average

    @property
    def averages_differ(self) -> bool:
        """True when the methods' "Average" bars are over different datasets (so not comparable)."""
        return len({tuple(sorted(d)) for d in self.average_datasets.values()}) > 1


def bar_data(experiments: list[dict], protocol: str) -> BarData:
    """The bar heights of the ``protocol`` experiments (``to_dict`` form, with ``label``), without drawing.

    Kept apart from the drawing so the numbers on the plot can be checked against the tables.
    """
    chosen = [e for e in experiments if e["protocol"] == protocol]
    metrics = B2N_METRICS if protocol == "base2novel" else ACCURACY_METRICS
    data = BarData(protocol, metrics, [], [e.get("legend", e.get("label", e["name"])) for e in chosen])
    data.heights = {m: {method: {} for method in data.methods} for m in metrics}
    data.errors = {m: {method: {} for method in data.methods} for m in metrics}

    def put(metric: str, method: str, group: str, value: float | None, stat: dict | None = None) -> None:
        if value is None or not math.isfinite(value):
            return
        if group not in data.groups:
            data.groups.append(group)
        data.heights[metric][method][group] = float(value)
        if stat and stat.get("n", 0) > 1:
            data.errors[metric][method][group] = float(stat["std"])

    for experiment, method in zip(chosen, data.methods):
        for row in experiment["datasets"]:
            if protocol == "base2novel":
                for key in ("base", "novel"):
                    stat = row.get(key)
                    put(key, method, row["dataset"], stat and stat["mean"], stat)
                put("HM", method, row["dataset"], row.get("hm"), row.get("hm_of_seeds"))
            else:
                stat = row.get("accuracy")
                put("accuracy", method, row["dataset"], stat and stat["mean"], stat)
    for experiment, method in zip(chosen, data.methods):
        average = experiment.get("average")
        if not average:
            continue
        data.average_datasets[method] = list(average["datasets"])
        for metric in metrics:
            put(metric, method, AVERAGE, average.get("hm" if metric == "HM" else metric))
    if AVERAGE in data.groups:  # always last
        data.groups.remove(AVERAGE)
        data.groups.append(AVERAGE)
    return data


def bar_figure_size(n_groups: int, n_methods: int, n_rows: int) -> tuple[int, int]:
    """Pixel (width, height) of the bar figure: wide enough for every bar, one band per metric row."""
    width = max(700, 120 + n_groups * max(n_methods * 22 + 30, 80))
    height = 160 + 300 * n_rows + 18 * n_methods  # title + rows + the legend below them
    return width, height


def plot_bars(experiments: list[dict], path: Path | str, title: str | None = None) -> Path:
    """Write the grouped bar chart of ``experiments`` (``load_experiments`` form) to ``path`` (PNG).

    One subplot per metric, stacked: base, novel, HM for base-to-novel experiments, then accuracy for the
    others; the same method keeps its colour in every subplot.
    """
    plt = _pyplot()
    rows = [bar_data(experiments, p) for p in ("base2novel", "accuracy")]
    rows = [r for r in rows if r.methods and r.groups]
    if not rows:
        raise ValueError("no finished results to plot (every run is unfinished or has no accuracy)")
    panels = [(row, metric) for row in rows for metric in row.metrics]
    methods = list(dict.fromkeys(m for row in rows for m in row.methods
                                 if any(row.heights[metric][m] for metric in row.metrics)))  # with a bar
    colours = {m: plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")(i % 20) for i, m in enumerate(methods)}
    width, height = bar_figure_size(max(len(r.groups) for r in rows), len(methods), len(panels))
    fig, axes = plt.subplots(len(panels), 1, figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained",
                             squeeze=False)  # fmt: skip
    for ax, (row, metric) in zip(axes[:, 0], panels):
        shown = [m for m in row.methods if m in methods]
        slot = 0.8 / max(len(shown), 1)
        top = 0.0
        for i, method in enumerate(shown):
            groups = [g for g in row.groups if g in row.heights[metric][method]]
            xs = [row.groups.index(g) - 0.4 + slot * (i + 0.5) for g in groups]
            ys = [row.heights[metric][method][g] for g in groups]
            errs = [row.errors[metric][method].get(g, 0.0) for g in groups]
            if not xs:
                continue
            bars = ax.bar(xs, ys, slot * 0.95, yerr=errs if any(errs) else None, capsize=2,
                          color=colours[method], label=method, error_kw={"elinewidth": 0.8})  # fmt: skip
            if len(row.groups) * len(shown) <= 60:
                ax.bar_label(bars, fmt="%.1f", fontsize=6, rotation=90, padding=2)
            top = max(top, max(y + e for y, e in zip(ys, errs)))
        labels = [f"{AVERAGE}*" if g == AVERAGE and row.averages_differ else g for g in row.groups]
        ax.set_xticks(range(len(row.groups)), labels, rotation=30 if len(row.groups) > 6 else 0,
                      ha="right" if len(row.groups) > 6 else "center", fontsize=8)  # fmt: skip
        ax.set_xlim(-0.6, len(row.groups) - 0.4)
        ax.set_ylim(0, min(110.0, top * 1.15 + 1))
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[m]) for m in methods]
    labels = list(methods)
    if any(row.averages_differ for row in rows):
        handles.append(plt.Line2D([], [], linestyle="none"))
        labels.append(f"{AVERAGE}*: each method averages over its own datasets (not comparable)")
    return _finish(plt, fig, handles, labels, title, path)


# ---------------------------------------------------------------------------------------------------- curves
@dataclass
class RunCurves:
    """Per-epoch series of one run folder: training losses (from the log) and val accuracy."""

    label: str  # the legend: the method (``collect_curves``) or the run folder relative to its root
    losses: dict[str, list[tuple[int, float]]]
    val: list[tuple[int, float]]
    train_accuracy: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    method: str = ""  # the trainer (results.json, else the log's config)
    path: str = ""  # the run folder relative to the root it was found under

    @property
    def has_data(self) -> bool:
        return bool(self.losses or self.val or self.train_accuracy)


def val_from_results_json(run_dir: Path) -> list[tuple[int, float]] | None:
    """Per-epoch ``(epoch, accuracy)`` of the ``val`` evaluations in ``results.json``; None without the file.

    The final evaluation (the deployed model, ``final``) is left out; a re-evaluated epoch keeps its last value.
    """
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        return None
    try:
        data = read_results(path)
    except ValueError:  # unreadable (parse_results says so): the log's curve is used
        return None
    by_epoch: dict[int, float] = {}
    for entry in data["evaluations"]:
        if entry.get("split") != "val" or entry.get("stage") != "epoch" or entry.get("final"):
            continue
        epoch, accuracy = entry.get("epoch"), entry.get("accuracy")
        if isinstance(epoch, int) and isinstance(accuracy, (int, float)):
            by_epoch[epoch] = float(accuracy)
    return sorted(by_epoch.items())


def read_curves(run_dir: Path | str, label: str | None = None) -> RunCurves:
    """The per-epoch series of one run: losses from its logs, val accuracy from results.json (else the log).

    A lone val point of a run that never trained (an eval-only run) is no curve and is dropped.
    """
    run_dir = Path(run_dir)
    summary = parse_log(read_logs(run_dir))
    losses = {k: v for k, v in summary.losses.items() if k not in TRAIN_ACCURACY}
    train_accuracy = {k: v for k, v in summary.losses.items() if k in TRAIN_ACCURACY}
    val = val_from_results_json(run_dir)
    if not val:
        val = sorted(dict(summary.val).items())
    if not losses and len(val) < 2:
        val = []
    method = _trainer_of(run_dir) or summary.config.get("TRAINER.NAME", "")
    return RunCurves(label or run_dir.name, losses, val, train_accuracy, method, label or run_dir.name)


def _trainer_of(run_dir: Path) -> str:
    try:
        return str(json.loads((run_dir / "results.json").read_text(encoding="utf-8")).get("trainer") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def collect_curves(root_or_run_dirs: Path | str | list[Path | str]) -> list[RunCurves]:
    """``RunCurves`` of every run folder under the given root(s) or run folder(s) that has per-epoch data.

    Labels are the run paths relative to the root they were found under (prefixed with the root, as in
    ``root_labels``, when several roots are given).
    """
    roots = [root_or_run_dirs] if isinstance(root_or_run_dirs, (str, Path)) else list(root_or_run_dirs)
    curves = []
    for root, prefix in zip(roots, root_labels(roots)):
        root = Path(root).resolve()
        for run_dir in find_run_dirs(root):
            relative = run_dir.relative_to(root).as_posix()
            if relative == ".":
                label = prefix if len(roots) > 1 else root.name
            else:
                label = f"{prefix}/{relative}" if len(roots) > 1 else relative
            run = read_curves(run_dir, label)
            if run.has_data:
                curves.append(run)
    for run, legend in zip(curves, legend_labels([(r.method, r.path) for r in curves])):
        run.label = legend
    return curves


def curve_figure_size(n_entries: int) -> tuple[int, int]:
    """Pixel (width, height) of the curves figure: two panels side by side, the legend below them."""
    return 1200, 460 + 17 * n_entries


def plot_curves(root_or_run_dirs: Path | str | list[Path | str] | list[RunCurves], path: Path | str, title: str | None = None) -> Path | None:
    """Write the training curves (loss per epoch | val accuracy per epoch, one colour per run) to ``path``.

    ``root_or_run_dirs``: root(s) / run folder(s) to search, or the ``collect_curves`` result itself.

    Returns None, writing nothing, when no run has per-epoch data (e.g. only eval-only or parsed-table runs).
    """
    given = list(root_or_run_dirs) if isinstance(root_or_run_dirs, (list, tuple)) else []
    runs = given if given and all(isinstance(r, RunCurves) for r in given) else collect_curves(root_or_run_dirs)
    if not runs:
        return None
    plt = _pyplot()
    colours = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    loss_names = list(dict.fromkeys(name for r in runs for name in r.losses))
    styles = ["-", "--", "-.", ":"]
    width, height = curve_figure_size(len(runs))
    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    for i, run in enumerate(runs):
        colour = colours(i % 20)
        for name, series in run.losses.items():
            style = styles[loss_names.index(name) % len(styles)]
            loss_ax.plot(*zip(*series), style, color=colour, marker="." if len(series) < 30 else None)
        for series in run.train_accuracy.values():
            val_ax.plot(*zip(*series), ":", color=colour, alpha=0.6)
        if run.val:
            val_ax.plot(*zip(*run.val), "-", color=colour, marker="." if len(run.val) < 30 else None)
    values = [v for r in runs for series in r.losses.values() for _, v in series]
    scale = "log" if values and min(values) > 0 else "symlog"
    loss_ax.set_yscale(scale)
    loss_ax.set_title(f"training loss, {scale} scale (running average at the epoch's last logged batch)", fontsize=9)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    val_ax.set_title("accuracy on the model-selection split (the logs' *val*; test images with DATASET.VAL_SOURCE "
                     "test, as the original)" + ("\ndotted: training accuracy" if any(r.train_accuracy for r in runs)
                                                 else ""), fontsize=9)  # fmt: skip
    val_ax.set_xlabel("epoch")
    val_ax.set_ylabel("accuracy (%)")
    for ax, empty in ((loss_ax, not loss_names), (val_ax, not any(r.val or r.train_accuracy for r in runs))):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if empty:
            ax.text(0.5, 0.5, "no per-epoch data", transform=ax.transAxes, ha="center", va="center", color="grey")
    handles = [plt.Line2D([], [], color=colours(i % 20)) for i in range(len(runs))]
    labels = [r.label for r in runs]
    if len(loss_names) > 1:
        handles += [plt.Line2D([], [], color="black", linestyle=styles[i % len(styles)]) for i in range(len(loss_names))]
        labels += [f"loss: {name}" for name in loss_names]
    return _finish(plt, fig, handles, labels, title, path)


def _finish(plt, fig, handles: list, labels: list[str], title: str | None, path: Path | str) -> Path:
    """Legend under the plots, optional title, then the PNG; the figure is closed."""
    fig.legend(handles, labels, loc="outside lower center", ncol=1, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", metavar="ROOT", help="output root(s) or experiment folder(s) to plot")
    parser.add_argument("--out", required=True, help="PNG with the bars (e.g. results.png)")
    parser.add_argument("--curves", help="PNG with the training curves (default: <out stem>_curves.png, written "
                                         "only when a run has per-epoch data)")  # fmt: skip
    parser.add_argument("--title", help="figure title")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _pyplot()
    except MatplotlibMissing as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    try:
        experiments = load_experiments(args.roots)
    except (FileNotFoundError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    for root in args.roots:
        if not find_run_dirs(Path(root).resolve()):
            print(f"No runs under {Path(root).resolve()} (no results.json or log.txt found).", file=sys.stderr)
    if not experiments:
        return 1
    written = []
    out = Path(args.out)
    try:
        written.append(plot_bars(experiments, out, args.title))
    except ValueError as err:
        print(f"No bars: {err}", file=sys.stderr)
    curves = plot_curves(args.roots, Path(args.curves) if args.curves else curves_path(out), args.title)
    if curves is not None:
        written.append(curves)
    elif args.curves:
        print(f"No curves: no run under {', '.join(args.roots)} has per-epoch losses or val accuracy.", file=sys.stderr)
    for path in written:
        print(path)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
