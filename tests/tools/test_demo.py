"""tools/demo.py runs end to end on CPU with its defaults and prints the result table."""

from __future__ import annotations

import math
import re
import sys

import pytest

from tools import demo


@pytest.mark.slow
def test_demo_runs_and_prints_a_table(tmp_path, capsys):
    console = sys.stdout
    try:
        assert demo.main(["--out", str(tmp_path / "demo")]) == 0
    finally:
        sys.stdout = console
    out = capsys.readouterr().out
    row = re.search(r"^Zero-shot CLIP\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", out, flags=re.M)
    assert row, out[-2000:]
    base, novel, hm = map(float, row.groups())
    assert all(math.isfinite(v) and 0 <= v <= 100 for v in (base, novel, hm))
    assert hm == pytest.approx(demo.harmonic_mean(base, novel), abs=0.01)
    assert "random-weight" in out
    for subsample in ("base", "new"):
        run = tmp_path / "demo" / "runs" / "ZeroshotCLIP" / f"test_{subsample}"
        assert (run / "results.json").is_file() and (run / "log.txt").is_file()
    assert (tmp_path / "demo" / "data" / "demo" / "split_demo.json").is_file()
