"""ZeroshotCLIP end to end, run the way the upstream zero-shot script runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT, make_tiny_caltech
from tools.make_tiny_clip import make_tiny_clip, save_tiny_clip


@pytest.fixture(scope="module")
def tiny_student_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "ViT-B-16.pt"
    save_tiny_clip(make_tiny_clip("student", image_size=32, layers=2, seed=3), path)
    return path


@pytest.mark.slow
def test_zeroshot_script_prints_accuracy_and_writes_results(tmp_path, tiny_student_ckpt):
    data = make_tiny_caltech(tmp_path / "data")
    env = dict(os.environ, DATA=str(data), OUTPUT=str(tmp_path / "out"), PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [
            "bash",
            "scripts/zsclip/zeroshot.sh",
            "caltech101",
            "vit_b16",
            "MODEL.BACKBONE.PATH",
            str(tiny_student_ckpt),
            "INPUT.SIZE",
            "(32, 32)",
            "DATALOADER.NUM_WORKERS",
            "0",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "+ " in out and "train.py" in out  # the script prints what it runs
    assert "=> result" in out
    match = re.search(r"\* accuracy: ([\d.]+)%", out)
    assert match, out[-2000:]

    run_dir = tmp_path / "out" / "ZeroshotCLIP" / "vit_b16" / "caltech101"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["trainer"] == "ZeroshotCLIP"
    assert results["dataset"] == "Caltech101"
    final = results["final"]
    assert final["split"] == "test"
    assert final["num_samples"] == 4 * 3
    assert abs(final["accuracy"] - float(match.group(1))) < 0.051
    assert 0.0 <= final["accuracy"] <= 100.0
    log = (run_dir / "log.txt").read_text()
    assert "* accuracy:" in log
    assert (run_dir / "config.yaml").is_file()


def test_zeroshot_logits_equal_manual_clip_computation(tmp_path, tiny_student_ckpt):
    """The trainer's logits are 100 * cos(image, text('a photo of a {c}.')) computed by hand with open_clip."""
    import open_clip

    import train
    from trainers.backbone import load_clip

    data = make_tiny_caltech(tmp_path / "data")
    args = train.build_parser().parse_args(
        [
            "--root", str(data),
            "--trainer", "ZeroshotCLIP",
            "--dataset-config-file", str(REPO_ROOT / "configs/datasets/caltech101.yaml"),
            "--config-file", str(REPO_ROOT / "configs/trainers/CoOp/vit_b16.yaml"),
            "--output-dir", str(tmp_path / "out"),
            "--no-train",
            "MODEL.BACKBONE.PATH", str(tiny_student_ckpt),
            "INPUT.SIZE", "(32, 32)",
            "DATALOADER.NUM_WORKERS", "0",
            "USE_CUDA", "False",
        ]
    )
    trainer = train.run(args)
    batch = next(iter(trainer.test_loader))
    logits = trainer.model_inference(batch["img"])

    model = load_clip("ViT-B/16", str(tiny_student_ckpt))
    classnames = ["face", "leopard", "airplane", "anchor"]
    assert trainer.dm.dataset.classnames == classnames
    with torch.no_grad():
        text = model.encode_text(open_clip.tokenize([f"a photo of a {c}." for c in classnames]))
        image = model.encode_image(batch["img"])
    text = text / text.norm(dim=-1, keepdim=True)
    image = image / image.norm(dim=-1, keepdim=True)
    expected = model.logit_scale.exp() * image @ text.t()
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
