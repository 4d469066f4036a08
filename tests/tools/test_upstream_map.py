"""docs/upstream.md is generated and current; every original command line of it runs here (dry run) with the
original's output folders and a train.py command that parses and whose config loads; every original yaml name
loads; wrong positional arguments are errors, not other runs."""

from __future__ import annotations

import os
import subprocess

import pytest

import train
from dassl.config import get_cfg_default, merge_cfg_from_file
from tests.conftest import REPO_ROOT
from tools import upstream_map
from trainers.config import extend_cfg


def test_docs_upstream_md_is_generated_from_the_rows():
    text = upstream_map.render()
    assert (REPO_ROOT / "docs" / "upstream.md").read_text(encoding="utf-8") == text, (
        "docs/upstream.md is stale: run python tools/upstream_map.py --write docs/upstream.md"
    )
    assert upstream_map.main(["--check", str(REPO_ROOT / "docs" / "upstream.md")]) == 0


@pytest.mark.parametrize("row", upstream_map.SCRIPT_ROWS, ids=lambda row: row.command)
def test_every_original_command_line_runs_as_the_original(row, monkeypatch):
    runs = upstream_map.check(row)  # the original's output folders, in order
    monkeypatch.chdir(REPO_ROOT)
    for argv in runs:
        args = train.build_parser().parse_args(argv)
        cfg = train.setup_cfg(args)  # config files exist, every override is a known key of the right type
        assert (args.output_dir, args.trainer) == (cfg.OUTPUT_DIR, cfg.TRAINER.NAME)


def test_a_changed_output_folder_is_reported():
    row = upstream_map.ScriptRow("CoOp", "bash scripts/cocoop/xd_train.sh 1", ("output/somewhere/else",))
    with pytest.raises(upstream_map.MappingError, match="the original writes"):
        upstream_map.check(row)


@pytest.mark.parametrize("row", upstream_map.CONFIG_ROWS, ids=lambda row: row.upstream)
def test_every_original_yaml_name_loads(row):
    assert row.path.is_file(), f"{row.upstream}: expected {row.path}"
    cfg = get_cfg_default()
    extend_cfg(cfg)
    merge_cfg_from_file(cfg, str(row.path))
    assert cfg.OPTIM.MAX_EPOCH >= 1 and cfg.MODEL.BACKBONE.NAME


@pytest.mark.parametrize("row", upstream_map.TOOL_ROWS, ids=lambda row: row[1])
def test_every_original_tool_has_ours(row):
    words = row[2].split()
    target = words[1] if words[0] == "python" and words[1] != "train.py" else "train.py"
    assert (REPO_ROOT / target).is_file()
    if "--config-file" in words:
        assert (REPO_ROOT / words[words.index("--config-file") + 1]).is_file()


def test_kgcoop_original_yaml_with_a_bool_ctx_init_loads(tmp_path):
    for value, expected in (("True", "a photo of a"), ("False", "")):
        yaml_file = tmp_path / f"kgcoop_{value}.yaml"
        yaml_file.write_text(f"TRAINER:\n  COOP:\n    CTX_INIT: {value}\n  COCOOP:\n    CTX_INIT: {value}\n")
        cfg = get_cfg_default()
        extend_cfg(cfg)
        merge_cfg_from_file(cfg, str(yaml_file))
        assert [expected, expected] == [cfg.TRAINER.COOP.CTX_INIT, cfg.TRAINER.COCOOP.CTX_INIT]


def test_prograd_loss_keys_load(tmp_path):
    yaml_file = tmp_path / "prograd.yaml"
    yaml_file.write_text('LOSS:\n  GM: False\n  NAME: "prograd"\n  ALPHA: 0.\n  T: 1.0\n  LAMBDA: 0.8\n')
    cfg = get_cfg_default()
    extend_cfg(cfg)
    merge_cfg_from_file(cfg, str(yaml_file))
    assert (cfg.LOSS.NAME, cfg.LOSS.LAMBDA, cfg.LOSS.T) == ("prograd", 0.8, 1.0)


def _dry(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("CFG", "SEEDS", "W", "XD_SOURCE", "LOADEP")
    }
    environment.update(upstream_map.DRY_ENV, **env)
    return subprocess.run(
        ["bash", *args], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def _runs(proc: subprocess.CompletedProcess) -> list[list[str]]:
    assert proc.returncode == 0, proc.stderr
    return [
        line[2:].split()[2:]
        for line in proc.stdout.splitlines()
        if line.startswith("+ ") and "train.py" in line
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("scripts/kgcoop/base2new_train_seed.sh", "dtd", "8.0"),  # a weight where the seed goes
        ("scripts/coop/base2new_train.sh", "dtd", "1.5"),
        ("scripts/maple/xd_train.sh", "imagenet", "2.0"),
        ("scripts/promptkd/base2new_train.sh", "dtd", "8.0"),
        ("scripts/kgcoop/base2new_train.sh", "dtd", "eight"),  # a word where the weight goes
        ("scripts/coop/main.sh", "dtd", "rn50", "start", "16", "1", "False"),
        ("scripts/promptsrc/few_shot.sh", "dtd", "1.5"),
    ],
)
def test_a_wrong_positional_argument_is_an_error(args):
    proc = _dry(*args)
    assert proc.returncode == 2, proc.stdout
    assert "Expected" in proc.stderr and "usage:" in proc.stderr
    assert "train.py" not in proc.stdout


def test_kgcoop_xd_train_refuses_our_old_seed_argument():
    proc = _dry("scripts/kgcoop/xd_train.sh", "1")
    assert proc.returncode == 2 and "xd_train_imagenet.sh <seed>" in proc.stderr


def test_xd_train_takes_both_signatures():
    ours = _runs(_dry("scripts/maple/xd_train.sh", "1"))
    theirs = _runs(_dry("scripts/maple/xd_train.sh", "imagenet", "1"))
    assert ours == theirs and len(ours) == 1
    other_source = _runs(_dry("scripts/maple/xd_train.sh", "caltech101", "2"))[0]
    assert upstream_map.option(other_source, "--output-dir").endswith(
        "/caltech101/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets_16shots/seed2"
    )


def test_zeroshot_takes_overrides_without_a_cfg():
    argv = _runs(_dry("scripts/zsclip/zeroshot.sh", "caltech101", "DATASET.SUBSAMPLE_CLASSES", "base"))[0]
    assert upstream_map.option(argv, "--config-file") == "configs/trainers/CoOp/vit_b16.yaml"
    assert upstream_map.option(argv, "--output-dir") == "output/ZeroshotCLIP/vit_b16/caltech101"
    assert argv[-2:] == ["DATASET.SUBSAMPLE_CLASSES", "base"]


def test_promptkd_student_folder_names_the_shots_it_uses():
    argv = _runs(_dry("scripts/promptkd/base2new_train.sh", "dtd", "1", "DATASET.NUM_SHOTS", "4"))[0]
    assert "/shots_4/PromptKD/" in upstream_map.option(argv, "--output-dir")
    assert argv[-2:] == ["DATASET.NUM_SHOTS", "4"]  # the user's value wins over the script's 0
    argv = _runs(_dry("scripts/promptkd/xd_train.sh", "dtd", "1", "DATASET.NUM_SHOTS", "4"))[0]
    assert upstream_map.option(argv, "--output-dir").endswith("_cross_datasets_4shots/seed1")


@pytest.mark.parametrize(("dataset", "gpa"), [("caltech101", ("30", "30")), ("dtd", ("45", "5"))])
def test_promptsrc_few_shot_gets_the_dataset_gpa(dataset, gpa):
    runs = _runs(_dry("scripts/promptsrc/few_shot.sh", dataset, "4", SEEDS="2"))
    assert len(runs) == 1 and upstream_map.option(runs[0], "--seed") == "2"
    assert (
        upstream_map.option(runs[0], "TRAINER.PROMPTSRC.GPA_MEAN"),
        upstream_map.option(runs[0], "TRAINER.PROMPTSRC.GPA_STD"),
    ) == gpa


def test_sweeps_call_kgcoops_one_run_scripts():
    from tools import sweep

    b2n = [step.key for step in sweep.plan(["kgcoop"], "base2new", ["dtd"], [2])]
    assert b2n == ["kgcoop/base2new_train_seed.sh dtd 2", "kgcoop/base2new_test_seed.sh dtd 2"]
    xd = [step.key for step in sweep.plan(["kgcoop"], "xd", ["dtd"], [1])]
    assert xd == ["kgcoop/xd_train_imagenet.sh 1", "kgcoop/xd_test.sh dtd 1"]
