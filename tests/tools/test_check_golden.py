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
