"""tools/plot_results.py: the bars show parse_results' numbers, the curves the logged per-epoch series, PNGs out."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from tools import plot_results  # noqa: E402
from tools.parse_results import harmonic_mean  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PROMPTKD = "base2new/shots_0/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx"
COOP = "base2new/shots_16/CoOp/vit_b16_ctxv1"
CROSS = "xd/test/shots_0/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx"

# (dataset folder, DATASET.NAME, seed) -> (base, novel): what the PromptKD runs' results.json say
PROMPTKD_RUNS = {
    ("caltech101", "Caltech101", 1): (98.0, 95.0),
    ("caltech101", "Caltech101", 2): (97.0, 96.5),
    ("dtd", "DescribableTextures", 1): (80.0, 60.0),
}
VAL = {1: [91.0, 98.0, 97.5], 2: [90.0, 97.0, 96.0]}  # per-epoch val (base) accuracy in results.json, per seed
LOSS = [(2.5, 2.25), (1.5, 1.375), (1.0, 0.875)]  # per epoch: (last batch loss, running average at the last batch)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])  # the IHDR chunk: width, height


def progress_line(epoch: int, max_epoch: int, batch: int, n_batches: int, items: dict[str, tuple[float, float]]) -> str:
    """A progress line as TrainerX._print_progress writes it (MetricMeter: ``name val (avg)``)."""
    meters = " ".join(f"{name} {val:.4f} ({avg:.4f})" for name, (val, avg) in items.items())
    return (f"epoch [{epoch}/{max_epoch}] batch [{batch}/{n_batches}] time 0.101 (0.120) data 0.001 (0.002) "
            f"{meters} lr 1.0000e-03 eta 0:00:01")  # fmt: skip


def eval_block(split: str, accuracy: float) -> str:
    """An evaluation as the trainer (``Evaluate on the *split* set``) and the evaluator print it."""
    return (f"Evaluate on the *{split}* set\n=> result\n* total: 200\n* correct: {int(accuracy * 2)}\n"
            f"* accuracy: {accuracy:.1f}%\n* error: {100 - accuracy:.1f}%\n* macro_f1: {accuracy:.1f}%")  # fmt: skip


def results_json(trainer: str, dataset: str, seed: int, evaluations: list[dict], final: dict | None, **extra) -> dict:
    payload = {
        "trainer": trainer, "dataset": dataset, "seed": seed, "num_shots": 0, "subsample_classes": "all",
        "backbone": "ViT-B/16", "final_model": "best_val", "config_hash": "0123456789abcdef",
        "evaluations": evaluations,
    }  # fmt: skip
    if final is not None:
        payload["final"] = final
    payload.update(extra)
    return payload


def evaluation(split: str, epoch: int, accuracy: float) -> dict:
    return {"split": split, "epoch": epoch, "num_samples": 200, "accuracy": accuracy, "error_rate": 100 - accuracy,
            "macro_f1": accuracy}  # fmt: skip


def write_run(run_dir: Path, payload: dict, log: str | None = None) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(payload), encoding="utf-8")
    if log is not None:
        (run_dir / "log.txt").write_text(log, encoding="utf-8")
    return run_dir


def write_promptkd_run(root: Path, folder: str, dataset: str, seed: int, base: float, novel: float) -> Path:
    """A finished PromptKD base-to-novel run: val (base) every epoch, best epoch deployed on test (novel)."""
    val = VAL[seed] if folder == "caltech101" else [70.0, base, base - 1]
    best = int(np.argmax(val)) + 1
    assert val[best - 1] == base
    evaluations = [evaluation("val", e, a) for e, a in enumerate(val, start=1)]
    evaluations.append(evaluation("test", 3, novel - 1))  # the last-epoch model on novel (novel_last)
    final = evaluation("test", best, novel)
    evaluations.append(final)
    payload = results_json(
        "PromptKD", dataset, seed, evaluations, final, modal="base2novel",
        selection={"rule": "best_val", "split": "test split (upstream parity)"},
        base={"accuracy": base, "epoch": best}, novel={"accuracy": novel, "epoch": best},
        hm=harmonic_mean(base, novel), base_last={"accuracy": val[-1], "epoch": 3},
        novel_last={"accuracy": novel - 1, "epoch": 3},
    )  # fmt: skip
    lines = ["** Config **", "(the config dump)", ""]
    for epoch, (value, average) in enumerate(LOSS, start=1):
        lines += [progress_line(epoch, 3, 1, 2, {"loss": (value + 0.5, average + 0.25)})]
        lines += [progress_line(epoch, 3, 2, 2, {"loss": (value, average)})]
        lines += [eval_block("val", val[epoch - 1] - 5)]  # the log disagrees on purpose: results.json is preferred
    lines += [eval_block("test", novel - 1), "Finish training", "Deploy the model with the best val performance",
              eval_block("test", novel)]  # fmt: skip
    run_dir = root / "base2new" / "train_base" / folder / "shots_0" / "PromptKD" / PROMPTKD.split("/")[-1]
    return write_run(run_dir / f"seed_{seed}", payload, "\n".join(lines) + "\n")


@pytest.fixture
def output_root(tmp_path: Path) -> Path:
    """PromptKD base-to-novel (2 datasets, 1-2 seeds), CoOp base-to-novel (1 dataset), PromptKD cross-dataset."""
    root = tmp_path / "output"
    for (folder, dataset, seed), (base, novel) in PROMPTKD_RUNS.items():
        write_promptkd_run(root, folder, dataset, seed, base, novel)
    coop = ("shots_16", "CoOp", "vit_b16_ctxv1", "seed1")
    train_log = "\n".join(
        progress_line(e, 2, 1, 1, {"loss": (1.0 / e, 1.0 / e), "acc": (50.0 * e, 50.0 * e)}) for e in (1, 2)
    ) + "\nFinish training\n" + eval_block("test", 90.0) + "\n"  # fmt: skip
    write_run(root.joinpath("base2new", "train_base", "caltech101", *coop),
              results_json("CoOp", "Caltech101", 1, [evaluation("test", 2, 90.0)], evaluation("test", 2, 90.0),
                           subsample_classes="base", final_model="last_step"), train_log)  # fmt: skip
    write_run(root.joinpath("base2new", "test_new", "caltech101", *coop),
              results_json("CoOp", "Caltech101", 1, [evaluation("test", 2, 70.0)], evaluation("test", 2, 70.0),
                           subsample_classes="new", final_model="last_step"),
              eval_block("test", 70.0) + "\n")  # fmt: skip
    for folder, dataset, accuracy in (("caltech101", "Caltech101", 93.5), ("dtd", "DescribableTextures", 45.0)):
        final = evaluation("test", 20, accuracy)
        write_run(root / "xd" / "test" / folder / "shots_0" / "PromptKD" / CROSS.split("/")[-1] / "seed_1",
                  results_json("PromptKD", dataset, 1, [final], final, modal="cross",
                               accuracy={"accuracy": accuracy, "epoch": 20}))  # fmt: skip
    return root


# ------------------------------------------------------------------------------------------------------ bars
def test_bar_data_holds_the_numbers_written_in_results_json(output_root):
    experiments = plot_results.load_experiments([output_root])
    assert sorted(e["label"] for e in experiments) == sorted([PROMPTKD, COOP, CROSS])
    # legends: the method, as the tables name it (the experiment path only where two share a trainer in a row)
    legend = {e["label"]: e["legend"] for e in experiments}
    assert legend == {PROMPTKD: "PromptKD", COOP: "CoOp", CROSS: "PromptKD"}
    kd, coop, cross = legend[PROMPTKD], legend[COOP], legend[CROSS]

    bars = plot_results.bar_data(experiments, "base2novel")
    assert bars.metrics == ("base", "novel", "HM")
    assert bars.groups == ["Caltech101", "DescribableTextures", "Average"]
    assert sorted(bars.methods) == sorted([kd, coop])

    caltech = [v for (folder, _, _), v in PROMPTKD_RUNS.items() if folder == "caltech101"]
    base, novel = np.mean([b for b, _ in caltech]), np.mean([n for _, n in caltech])
    height, error = bars.heights, bars.errors
    assert height["base"][kd]["Caltech101"] == pytest.approx(base)
    assert height["novel"][kd]["Caltech101"] == pytest.approx(novel)
    assert height["HM"][kd]["Caltech101"] == pytest.approx(harmonic_mean(base, novel))  # HM of the means
    assert error["base"][kd]["Caltech101"] == pytest.approx(np.std([b for b, _ in caltech]))
    assert error["novel"][kd]["Caltech101"] == pytest.approx(np.std([n for _, n in caltech]))
    assert error["HM"][kd]["Caltech101"] == pytest.approx(np.std([harmonic_mean(b, n) for b, n in caltech]))
    assert height["base"][kd]["DescribableTextures"] == 80.0
    assert height["HM"][kd]["DescribableTextures"] == pytest.approx(harmonic_mean(80.0, 60.0))
    assert "DescribableTextures" not in error["base"][kd]  # one seed: no error bar
    average_base, average_novel = (base + 80.0) / 2, (novel + 60.0) / 2
    assert height["base"][kd]["Average"] == pytest.approx(average_base)
    assert height["novel"][kd]["Average"] == pytest.approx(average_novel)
    assert height["HM"][kd]["Average"] == pytest.approx(harmonic_mean(average_base, average_novel))
    # CoOp: base from train_base, novel from test_new; one dataset, so no Average bar
    assert height["base"][coop] == {"Caltech101": 90.0}
    assert height["novel"][coop] == {"Caltech101": 70.0}
    assert height["HM"][coop] == {"Caltech101": pytest.approx(harmonic_mean(90.0, 70.0))}
    assert error["base"][coop] == {}

    accuracy = plot_results.bar_data(experiments, "accuracy")
    assert accuracy.metrics == ("accuracy",) and accuracy.methods == [cross]
    assert accuracy.heights["accuracy"][cross] == {
        "Caltech101": 93.5, "DescribableTextures": 45.0, "Average": pytest.approx((93.5 + 45.0) / 2)}  # fmt: skip


def test_labels_of_several_roots_name_the_root(output_root, tmp_path):
    other = tmp_path / "elsewhere" / "output"
    write_promptkd_run(other, "dtd", "DescribableTextures", 1, 80.0, 60.0)
    write_promptkd_run(other, "eurosat", "EuroSAT", 1, 80.0, 60.0)
    experiments = plot_results.load_experiments([output_root, other])
    labels = [e["label"] for e in experiments]
    # the roots share their last folder name, so one more level tells them apart
    assert f"{tmp_path.name}/output/{PROMPTKD}" in labels and f"elsewhere/output/{PROMPTKD}" in labels
    assert len(set(labels)) == len(labels)
    assert plot_results.root_labels(["a/runs", "b/other"]) == ["runs", "other"]
    # the two PromptKD experiments average over different datasets: the "Average" group says so
    assert plot_results.bar_data(experiments, "base2novel").averages_differ
    assert not plot_results.bar_data(plot_results.load_experiments([output_root]), "base2novel").averages_differ


def test_plot_bars_writes_a_png_of_the_expected_size(output_root, tmp_path):
    experiments = plot_results.load_experiments([output_root])
    path = plot_results.plot_bars(experiments, tmp_path / "plots" / "bars.png", title="B2N")
    assert path == tmp_path / "plots" / "bars.png"
    # 3 groups (2 datasets + Average), 2 methods (PromptKD keeps one colour in both rows), 4 metric rows
    assert png_size(path) == plot_results.bar_figure_size(3, 2, 4)
    assert path.stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------------- curves
def test_curves_are_the_logged_losses_and_the_results_json_val_accuracy(output_root):
    runs = {r.path: r for r in plot_results.collect_curves(output_root)}
    promptkd = [f"base2new/train_base/{folder}/shots_0/PromptKD/{PROMPTKD.split('/')[-1]}/seed_{seed}"
                for folder, _, seed in PROMPTKD_RUNS]  # fmt: skip
    coop_train = "base2new/train_base/caltech101/shots_16/CoOp/vit_b16_ctxv1/seed1"
    # the eval-only CoOp test_new run and the cross-dataset runs (no log) have no per-epoch data
    assert sorted(runs) == sorted([*promptkd, coop_train])

    seed_1 = runs[promptkd[0]]
    assert seed_1.losses == {"loss": [(e, average) for e, (_, average) in enumerate(LOSS, start=1)]}
    assert seed_1.val == list(enumerate(VAL[1], start=1))  # results.json, not the log (which says 5 points less)
    assert runs[promptkd[1]].val == list(enumerate(VAL[2], start=1))

    coop = runs[coop_train]
    assert coop.losses == {"loss": [(1, 1.0), (2, 0.5)]}
    assert coop.train_accuracy == {"acc": [(1, 50.0), (2, 100.0)]}  # a training accuracy, not a loss
    assert coop.val == []


def test_curve_legends_name_the_method_and_the_run_only_where_two_share_it(output_root):
    runs = plot_results.collect_curves(output_root)
    legends = {r.path: r.label for r in runs}
    coop = "base2new/train_base/caltech101/shots_16/CoOp/vit_b16_ctxv1/seed1"
    assert legends[coop] == "CoOp"  # the only CoOp run with curves
    promptkd = [path for path in legends if "PromptKD" in path]
    assert len(promptkd) == 3 and all(legends[p] == f"PromptKD ({p})" for p in promptkd)


def test_loss_axis_is_logarithmic_so_a_large_kd_loss_does_not_flatten_the_rest(output_root, tmp_path, monkeypatch):
    plt = plot_results._pyplot()
    scales = []
    real_subplots = plt.subplots

    def spy(*args, **kwargs):
        fig, axes = real_subplots(*args, **kwargs)
        original = axes[0].set_yscale
        axes[0].set_yscale = lambda value, **kw: (scales.append(value), original(value, **kw))[1]
        return fig, axes

    monkeypatch.setattr(plt, "subplots", spy)
    assert plot_results.plot_curves(output_root, tmp_path / "c.png") is not None
    assert scales == ["log"]


def test_val_curve_falls_back_to_the_log_without_results_json(tmp_path):
    run_dir = tmp_path / "upstream" / "seed1"
    run_dir.mkdir(parents=True)
    lines = []
    for epoch, accuracy in ((1, 60.0), (2, 72.5)):
        lines += [progress_line(epoch, 2, 1, 1, {"loss": (1.0, 0.5 * epoch)}), eval_block("val", accuracy)]
    (run_dir / "log.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    curves = plot_results.read_curves(run_dir)
    assert curves.val == [(1, 60.0), (2, 72.5)]
    assert curves.losses == {"loss": [(1, 0.5), (2, 1.0)]}


def test_plot_curves_writes_a_png_or_nothing(output_root, tmp_path):
    runs = plot_results.collect_curves(output_root)
    path = plot_results.plot_curves(runs, tmp_path / "curves.png", title="curves")
    assert png_size(path) == plot_results.curve_figure_size(len(runs))
    assert path.stat().st_size > 10_000
    assert plot_results.plot_curves(output_root / "xd", tmp_path / "none.png") is None  # no per-epoch data
    assert not (tmp_path / "none.png").exists()


# ------------------------------------------------------------------------------------------------------- CLI
def test_main_writes_the_bars_and_the_curves_next_to_them(output_root, tmp_path, capsys):
    out = tmp_path / "figs" / "results.png"
    assert plot_results.main([str(output_root), "--out", str(out), "--title", "all"]) == 0
    curves = tmp_path / "figs" / "results_curves.png"
    assert capsys.readouterr().out.split() == [str(out), str(curves)]
    assert png_size(out)[0] > 0 and png_size(curves)[0] > 0


def test_main_writes_no_curves_when_no_run_has_per_epoch_data(output_root, tmp_path, capsys):
    out = tmp_path / "xd.png"
    assert plot_results.main([str(output_root / "xd"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out)]
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert not (tmp_path / "xd_curves.png").exists()


def test_main_fails_without_runs(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert plot_results.main([str(empty), "--out", str(tmp_path / "r.png")]) == 1
    assert "No runs under" in capsys.readouterr().err
    assert not (tmp_path / "r.png").exists()
    assert plot_results.main([str(tmp_path / "absent"), "--out", str(tmp_path / "r.png")]) == 2
    assert "no such output folder" in capsys.readouterr().err


def test_main_says_how_to_install_matplotlib_when_it_is_missing(output_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    assert plot_results.main([str(output_root), "--out", str(tmp_path / "r.png")]) == 2
    assert plot_results.MISSING_MATPLOTLIB in capsys.readouterr().err
    assert 'pip install -e ".[plots]"' in plot_results.MISSING_MATPLOTLIB
    assert not (tmp_path / "r.png").exists()
    with pytest.raises(ImportError, match="matplotlib is not installed"):
        plot_results.plot_bars(plot_results.load_experiments([output_root]), tmp_path / "r.png")
