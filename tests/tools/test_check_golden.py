"""tools/check_golden.py and the suite's golden skip: a missing fixture folder is explained, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from tools import check_golden


def test_a_missing_fixture_folder_is_a_message_that_says_what_and_how(tmp_path, capsys):
    missing = tmp_path / "golden" / "promptkd"
    assert check_golden.main([str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: golden fixtures not found at") and str(missing) in err
    assert "original code" in err and "PROMPTKD_GOLDEN" in err and "Traceback" not in err


def test_the_suite_runs_torch_on_one_thread_and_passes_that_on_to_subprocesses():
    if os.environ.get("OMP_NUM_THREADS") != "1":  # someone asked for more threads on purpose
        return
    assert torch.get_num_threads() == 1
    code = "import os, torch; print(os.environ['OMP_NUM_THREADS'], torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1"]


def test_the_golden_check_grades_the_trainers_own_step(golden_dir, monkeypatch):
    """A change to a trainer's loss (not to the model or the loss function the check also calls) must fail the
    check: the loss, gradients and updated tensors graded are those of the trainer's ``forward_backward``."""
    from trainers.promptkd import PromptKD

    own = PromptKD.compute_loss

    def doubled(self, image, label):
        loss, summary = own(self, image, label)
        return 2 * loss, {**summary, "loss": 2 * summary["loss"]}

    monkeypatch.setattr(PromptKD, "compute_loss", doubled)
    failed = {c.name for c in check_golden.check_fixture(golden_dir / "promptkd") if not c.ok}
    assert {"outputs/loss", "grads/image_encoder.VPT", "after_step/VPT_image_trans.conv1.0.weight"} <= failed
    assert "outputs/class_vectors" not in failed and "outputs/eval_init_val_logits" not in failed
