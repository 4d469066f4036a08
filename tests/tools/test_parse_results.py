"""tools/parse_results.py on a synthetic output tree: per-seed numbers, means, HMs, averages, missing runs, formats."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from tools import paper_numbers
from tools import parse_results as pr

CFG = "vit_b16_c2_ep20_batch8_4+4ctx"

# (base, novel) per dataset stem and seed; DTD seed 3 is missing; Caltech101 seed 3 is an upstream log.txt only.
PROMPTKD = {
    ("caltech101", "Caltech101"): {1: (98.0, 96.0), 2: (99.0, 95.0), 3: (97.5, 97.0)},
    ("dtd", "DescribableTextures"): {1: (85.0, 70.0), 2: (86.0, 72.0)},
}


def write_promptkd_results(run_dir: Path, dataset: str, seed: int, base: float, novel: float, epoch: int = 7) -> None:
    """A results.json as trainers/promptkd.py writes it for a finished base-to-novel run."""
    run_dir.mkdir(parents=True)
    evaluations = [{"split": "val", "epoch": e, "accuracy": base - (epoch - e) * 0.1} for e in range(1, 11)]
    final = {"split": "test", "epoch": epoch, "num_samples": 50, "accuracy": novel}
    payload = {
        "trainer": "PromptKD", "dataset": dataset, "seed": seed, "num_shots": 0, "subsample_classes": "all",
        "backbone": "ViT-B/16", "final_model": "best_val", "config_hash": "0" * 16,
        "evaluations": [*evaluations, final], "final": final, "modal": "base2novel",
        "selection": {"rule": "best_val", "split": "test split (upstream parity)"},
        "base": {"accuracy": base, "epoch": epoch}, "novel": {"accuracy": novel, "epoch": epoch},
        "hm": 2 * base * novel / (base + novel),
    }  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(payload), encoding="utf-8")


def upstream_log(dataset: str, seed: int, vals: list[float], novel: float | None, max_epoch: int | None = None) -> str:
    """A log.txt in the format of the original Dassl/PromptKD code (config dump, progress, result blocks)."""
    max_epoch = max_epoch or len(vals)
    lines = [
        "***************", "** Arguments **", "***************", f"seed: {seed}", "************", "** Config **",
        "************", "DATALOADER:", "  NUM_WORKERS: 8", "DATASET:", f"  NAME: {dataset}", "  NUM_SHOTS: 0",
        "  SUBSAMPLE_CLASSES: all", "MODEL:", "  BACKBONE:", "    NAME: ViT-B/16", f"SEED: {seed}", "TEST:",
        "  FINAL_MODEL: best_val", "TRAINER:", "  MODAL: base2novel", "  NAME: PromptKD", "  PROMPTKD:",
        "    KD_WEIGHT: 1000.0", "USE_CUDA: True", "Collecting env info ...", "** System info **", "PyTorch 1.9",
    ]  # fmt: skip
    for epoch, acc in enumerate(vals, start=1):
        for batch in (1, 2):
            lines.append(
                f"epoch [{epoch}/{max_epoch}] batch [{batch}/2] time 0.100 (0.120) data 0.001 (0.002) "
                f"loss {1.0 / epoch:.4f} ({1.5 / epoch:.4f}) lr 5.0000e-03 eta 0:00:10"
            )
        lines += ["Evaluate on the *val* set", "=> result", "* total: 100", "* correct: 1",
                  f"* accuracy: {acc:.1f}%", "* error: 1.0%", "* macro_f1: 1.0%"]  # fmt: skip
    if novel is not None:
        lines += ["Finish training", "Deploy the model with the best val performance",
                  "Evaluate on the *test* set", "=> result", "* total: 50", "* correct: 40",
                  f"* accuracy: {novel:.1f}%", "* error: 20.0%", "* macro_f1: 79.0%", "Elapsed: 0:01:00"]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_baseline(root: Path, phase: str, stem: str, name: str, seed: int, sub: str, accuracy: float | None) -> None:
    run_dir = root / "base2new" / phase / stem / "shots_16" / "CoOp" / "vit_b16_ctxv1" / f"seed{seed}"
    run_dir.mkdir(parents=True)
    if accuracy is None:  # killed during training: a log with progress lines, no results.json yet
        progress = "epoch [3/200] batch [1/1] time 0.1 (0.1) data 0.0 (0.0) loss 2.0000 (2.1000) lr 2.0e-03 eta 0:10:00"
        (run_dir / "log.txt").write_text(f"** Config **\n****\nSEED: {seed}\n{progress}\n", encoding="utf-8")
        return
    final = {"split": "test", "epoch": None if phase == "test_new" else 200, "accuracy": accuracy}
    payload = {
        "trainer": "CoOp", "dataset": name, "seed": seed, "num_shots": 16, "subsample_classes": sub,
        "backbone": "ViT-B/16", "final_model": "last_step", "config_hash": "1" * 16, "evaluations": [final],
    }  # fmt: skip
    payload["final"] = final
    (run_dir / "results.json").write_text(json.dumps(payload), encoding="utf-8")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "output"
    for (stem, name), seeds in PROMPTKD.items():
        for seed, (base, novel) in seeds.items():
            run_dir = root / "base2new" / "train_base" / stem / "shots_0" / "PromptKD" / CFG / f"seed_{seed}"
            if (stem, seed) == ("caltech101", 3):  # an old run of the upstream code: log.txt only
                run_dir.mkdir(parents=True)
                vals = [base - 2, base, base - 1]  # best epoch 2
                (run_dir / "log.txt").write_text(upstream_log(name, seed, vals, novel), encoding="utf-8")
            else:
                write_promptkd_results(run_dir, name, seed, base, novel)
    # CoOp: seed 1 complete, seed 2 without its test_new run, plus an unfinished (killed) train_base run for seed 3
    write_baseline(root, "train_base", "caltech101", "Caltech101", 1, "base", 97.0)
    write_baseline(root, "test_new", "caltech101", "Caltech101", 1, "new", 90.0)
    write_baseline(root, "train_base", "caltech101", "Caltech101", 2, "base", 96.0)
    write_baseline(root, "train_base", "caltech101", "Caltech101", 3, "base", None)
    return root


def promptkd_experiment(experiments: list[pr.Experiment]) -> pr.Experiment:
    (experiment,) = [e for e in experiments if e.trainer == "PromptKD"]
    return experiment


def hm(b: float, n: float) -> float:
    return 2 * b * n / (b + n)


def test_per_seed_numbers_means_and_the_log_only_run(tree):
    experiment = promptkd_experiment(pr.collect(tree))
    assert experiment.protocol == "base2novel"
    assert experiment.name == f"base2new/shots_0/PromptKD/{CFG}"
    assert [d.dataset for d in experiment.datasets] == ["Caltech101", "DescribableTextures"]  # Table 1 order
    caltech, dtd = experiment.datasets
    assert [s.seed for s in caltech.seeds] == [1, 2, 3]
    for s in caltech.seeds:
        base, novel = PROMPTKD[("caltech101", "Caltech101")][s.seed]
        assert (s.base, s.novel) == (base, novel)
        assert s.hm == pytest.approx(hm(base, novel))
    seed3 = caltech.seeds[2]
    assert seed3.source == "log.txt" and seed3.epoch == 2 and seed3.selection == "best on test (ep 2)"
    assert caltech.seeds[0].source == "results.json" and caltech.seeds[0].selection == "best on test (ep 7)"

    bases = [98.0, 99.0, 97.5]
    novels = [96.0, 95.0, 97.0]
    assert caltech.stat("base").mean == pytest.approx(np.mean(bases))
    assert caltech.stat("base").std == pytest.approx(np.std(bases))  # population std, as parse_test_res.py
    assert caltech.stat("novel").ci95 == pytest.approx(1.96 * np.std(novels) / math.sqrt(3))
    assert caltech.hm == pytest.approx(hm(np.mean(bases), np.mean(novels)))  # HM of the means, not mean of HMs
    assert caltech.hm != pytest.approx(np.mean([hm(b, n) for b, n in zip(bases, novels)]), abs=1e-9)
    assert caltech.missing == []
    assert dtd.missing == ["seed 3"] and len(dtd.seeds) == 2


def test_average_row_is_the_hm_of_the_averaged_base_and_novel(tree):
    experiment = promptkd_experiment(pr.collect(tree))
    average = experiment.average()
    base_means = [np.mean([98.0, 99.0, 97.5]), np.mean([85.0, 86.0])]
    novel_means = [np.mean([96.0, 95.0, 97.0]), np.mean([70.0, 72.0])]
    assert average["datasets"] == ["Caltech101", "DescribableTextures"]
    assert average["base"] == pytest.approx(np.mean(base_means))
    assert average["novel"] == pytest.approx(np.mean(novel_means))
    assert average["hm"] == pytest.approx(hm(np.mean(base_means), np.mean(novel_means)))
    assert average["mean_of_dataset_hms"] == pytest.approx(np.mean([hm(b, n) for b, n in zip(base_means, novel_means)]))


def test_baseline_pairs_train_base_with_test_new_and_reports_missing_and_unfinished(tree):
    (coop,) = [e for e in pr.collect(tree) if e.trainer == "CoOp"]
    assert coop.name == "base2new/shots_16/CoOp/vit_b16_ctxv1"
    (caltech,) = coop.datasets
    s1, s2, s3 = caltech.seeds
    assert (s1.base, s1.novel, s1.hm) == (97.0, 90.0, pytest.approx(hm(97.0, 90.0)))
    assert s1.selection == "last (ep 200)" and s1.epoch == 200
    assert (s2.base, s2.novel, s2.hm) == (96.0, None, None)
    assert s3.base is None
    assert caltech.stat("base").n == 2 and caltech.stat("novel").n == 1
    assert caltech.missing == ["seed 2: novel accuracy (no finished test_new/ run)"]
    assert coop.unfinished == ["base2new/train_base/caltech101/shots_16/CoOp/vit_b16_ctxv1/seed3 (epoch 3/200)"]
    notes = pr.experiment_notes(coop)
    assert "missing: Caltech101 seed 2: novel accuracy (no finished test_new/ run)" in notes
    assert any(n.startswith("unfinished: base2new/train_base/caltech101") for n in notes)


def test_expected_seeds_flag_reports_every_absent_seed(tree):
    experiment = promptkd_experiment(pr.collect(tree, seeds=[1, 2, 3, 4]))
    assert experiment.datasets[0].missing == ["seed 4"]
    assert experiment.datasets[1].missing == ["seed 3", "seed 4"]


def test_table_markdown_and_paper_comparison(tree, capsys):
    assert pr.main([str(tree), "--compare", "paper"]) == 0
    out = capsys.readouterr().out
    assert "== PromptKD, ViT-B/16 · base-to-novel" in out
    mean_row = next(line for line in out.splitlines() if line.startswith("Caltech101") and "mean ± std (3)" in line)
    paper_b, paper_n, paper_h = paper_numbers.BASE_TO_NOVEL["PromptKD"]["Caltech101"]
    ours_b, ours_n = np.mean([98.0, 99.0, 97.5]), np.mean([96.0, 95.0, 97.0])
    assert f"{ours_b:.2f} ± {np.std([98.0, 99.0, 97.5]):.2f}" in mean_row
    assert f"{paper_b:.2f}/{paper_n:.2f}/{paper_h:.2f}" in mean_row
    assert f"{ours_b - paper_b:+.2f}/{ours_n - paper_n:+.2f}/{hm(ours_b, ours_n) - paper_h:+.2f}" in mean_row
    assert "missing: DescribableTextures seed 3" in out
    assert "the average leaves out 9 of the 11 benchmark datasets" in out
    average_row = next(line for line in out.splitlines() if line.startswith("Average (2 datasets)") and "HM of means" in line)
    paper_avg_b = np.mean([paper_b, paper_numbers.BASE_TO_NOVEL["PromptKD"]["DescribableTextures"][0]])
    assert f"{paper_avg_b:.2f}/" in average_row  # the paper averaged over the same two datasets

    assert pr.main([str(tree), "--format", "markdown", "--mean-only", "--ci95"]) == 0
    markdown = capsys.readouterr().out
    assert "### PromptKD" in markdown and "| dataset " in markdown and "mean ± 95% CI (3)" in markdown
    assert "| Caltech101 | 1 " not in markdown  # --mean-only


def test_csv_and_json_carry_the_numbers(tree, capsys, tmp_path):
    assert pr.main([str(tree), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    mean = next(r for r in rows if r["trainer"] == "PromptKD" and r["dataset"] == "DescribableTextures" and r["seed"] == "mean")
    assert float(mean["base"]) == pytest.approx(85.5) and float(mean["std_base"]) == pytest.approx(0.5)
    assert float(mean["hm"]) == pytest.approx(hm(85.5, 71.0), abs=1e-4) and mean["n"] == "2"
    seed_row = next(r for r in rows if r["trainer"] == "PromptKD" and r["dataset"] == "Caltech101" and r["seed"] == "3")
    assert seed_row["source"] == "log.txt" and float(seed_row["novel"]) == 97.0
    averages = [r for r in rows if r["trainer"] == "PromptKD" and r["dataset"] == "Average"]
    assert [r["selection"] for r in averages] == ["HM of means", "mean of HMs"]

    out_file = tmp_path / "results.json"
    assert pr.main([str(tree), "--format", "json", "--output", str(out_file)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert json.loads(out_file.read_text()) == data
    experiment = next(e for e in data["experiments"] if e["trainer"] == "PromptKD")
    caltech = experiment["datasets"][0]
    assert caltech["base"]["n"] == 3 and caltech["base"]["mean"] == pytest.approx(np.mean([98.0, 99.0, 97.5]))
    assert caltech["paper"] == list(paper_numbers.BASE_TO_NOVEL["PromptKD"]["Caltech101"])
    assert experiment["average"]["hm"] == pytest.approx(promptkd_experiment(pr.collect(tree)).average()["hm"])


def test_parse_log_reads_upstream_logs():
    summary = pr.parse_log(upstream_log("Caltech101", 3, [80.0, 82.5, 82.5], 75.3))
    assert summary.val == [(1, 80.0), (2, 82.5), (3, 82.5)]
    assert summary.final == 75.3 and summary.finished and summary.epoch == (3, 3)
    assert summary.config["TRAINER.NAME"] == "PromptKD" and summary.config["DATASET.NAME"] == "Caltech101"
    assert summary.config["MODEL.BACKBONE.NAME"] == "ViT-B/16" and summary.config["SEED"] == "3"
    assert summary.losses["loss"] == [(1, 1.5), (2, 0.75), (3, 0.5)]

    killed = pr.parse_log(upstream_log("Caltech101", 1, [80.0, 81.0], None, max_epoch=20))
    assert not killed.finished and killed.final is None and killed.epoch == (2, 20)

    eval_only = pr.parse_log("** Config **\n****\nSEED: 1\n=> result\n* accuracy: 64.2%\n* error: 35.8%\n")
    assert eval_only.finished and eval_only.final == 64.2


def test_killed_upstream_run_is_listed_as_unfinished(tmp_path):
    run_dir = tmp_path / "base2new" / "train_base" / "dtd" / "shots_0" / "PromptKD" / CFG / "seed_1"
    run_dir.mkdir(parents=True)
    (run_dir / "log.txt").write_text(upstream_log("DescribableTextures", 1, [50.0, 60.0], None, 20), encoding="utf-8")
    (experiment,) = pr.collect(tmp_path)
    assert experiment.unfinished == [f"base2new/train_base/dtd/shots_0/PromptKD/{CFG}/seed_1 (epoch 2/20)"]
    assert experiment.datasets[0].seeds[0].base is None


def test_accuracy_protocol_and_errors(tmp_path, capsys):
    for seed, acc in ((1, 60.0), (2, 64.0)):
        run_dir = tmp_path / "eurosat" / "PromptKD" / f"{CFG}_cross_datasets_0shots" / f"seed{seed}"
        run_dir.mkdir(parents=True)
        final = {"split": "test", "epoch": 5, "accuracy": acc}
        payload = {"trainer": "PromptKD", "dataset": "EuroSAT", "seed": seed, "subsample_classes": "all",
                   "backbone": "ViT-B/16", "final_model": "best_val", "evaluations": [final], "final": final,
                   "modal": "cross", "selection": {"rule": "best_val", "split": "test split (upstream parity)"}}  # fmt: skip
        (run_dir / "results.json").write_text(json.dumps(payload), encoding="utf-8")
    (experiment,) = pr.collect(tmp_path)
    assert experiment.protocol == "accuracy"
    assert experiment.datasets[0].stat("accuracy").mean == 62.0
    assert experiment.paper("EuroSAT") == (paper_numbers.ACCURACY["PromptKD"]["EuroSAT"],)
    assert pr.main([str(tmp_path), "--compare", "paper"]) == 0
    out = capsys.readouterr().out
    assert f"{62.0 - paper_numbers.ACCURACY['PromptKD']['EuroSAT']:+.2f}" in out

    assert pr.main([str(tmp_path / "nowhere")]) == 2
    assert "no such output folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert pr.main([str(tmp_path / "empty")]) == 1
    assert "No runs under" in capsys.readouterr().err
    bad = tmp_path / "bad" / "seed1"
    bad.mkdir(parents=True)
    (bad / "results.json").write_text("{not json", encoding="utf-8")
    assert pr.main([str(tmp_path / "bad"), "--strict"]) == 2
    assert "results.json: not a results.json" in capsys.readouterr().err
    assert pr.main([str(tmp_path / "bad")]) == 1  # nothing readable is left to print
    assert "Warning: unreadable run" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_a_truncated_results_json_is_a_warning_row_and_the_rest_is_printed(tree, capsys, fmt):
    assert pr.main([str(tree), "--format", fmt]) == 0
    complete = capsys.readouterr().out
    victim = tree / "base2new" / "train_base" / "dtd" / "shots_0" / "PromptKD" / CFG / "seed_2" / "results.json"
    text = victim.read_text(encoding="utf-8")
    victim.write_text(text[: len(text) // 2], encoding="utf-8")  # killed while writing, by another tool

    assert pr.main([str(tree), "--format", fmt]) == 0
    captured = capsys.readouterr()
    assert f"Warning: unreadable run, left out: {victim}: not a results.json" in captured.err
    if fmt in ("table", "markdown"):
        assert "Unreadable runs" in captured.out and str(victim) in captured.out
        assert "Caltech101" in captured.out and "DescribableTextures" in captured.out  # the other runs are there
        assert "86.00" not in captured.out  # the unreadable seed is not averaged in
    else:
        assert captured.out.count("Caltech101") == complete.count("Caltech101")
    assert pr.main([str(tree), "--format", fmt, "--strict"]) == 2
    assert str(victim) in capsys.readouterr().err


def test_summary_puts_methods_side_by_side(tree, capsys):
    assert pr.main([str(tree), "--summary"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("dataset"))
    assert header.split() == ["dataset", "PromptKD", "CoOp"]  # experiments in path order
    caltech = next(line for line in out.splitlines() if line.startswith("Caltech101")).split()
    b, n = np.mean([98.0, 99.0, 97.5]), np.mean([96.0, 95.0, 97.0])
    assert caltech[1] == f"{b:.2f}/{n:.2f}/{hm(b, n):.2f}"
    assert caltech[2] == f"96.50/90.00/{hm(96.5, 90.0):.2f}"  # CoOp: base of seeds 1-2, novel of seed 1 only
    dtd = next(line for line in out.splitlines() if line.startswith("DescribableTextures")).split()
    assert dtd[2] == "-"
    average = next(line for line in out.splitlines() if line.startswith("Average")).split()
    promptkd = promptkd_experiment(pr.collect(tree)).average()
    assert average[1] == f"{promptkd['base']:.2f}/{promptkd['novel']:.2f}/{promptkd['hm']:.2f}" and average[2] == "(2)"
    assert average[3] == "-"  # CoOp has one dataset: no average
