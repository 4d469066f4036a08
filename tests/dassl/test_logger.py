"""dassl.utils.logger: a run owns its log.txt (line-buffered, warnings and failures included) and the console
shows only what its level asks for; the streams are restored when the run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from dassl.utils import RunLog, announce, console_stream, detail
from dassl.utils.errors import UserError
from tests.conftest import REPO_ROOT


def test_streams_are_restored_and_later_lines_stay_out_of_the_file(tmp_path, capsys):
    before = (sys.stdout, sys.stderr)
    with RunLog(str(tmp_path)) as log:
        print("inside the run")
    print("after the run")
    assert (sys.stdout, sys.stderr) == before
    text = Path(log.path).read_text(encoding="utf-8")
    assert text == "inside the run\n"
    assert capsys.readouterr().out == "inside the run\nafter the run\n"


def test_a_failed_run_keeps_its_message_and_traceback_and_restores_the_streams(tmp_path):
    before = (sys.stdout, sys.stderr)
    with pytest.raises(UserError), RunLog(str(tmp_path)) as log:
        print("epoch 1 done")
        raise UserError("DATASET.ROOT /nowhere does not exist: pass --root")
    assert (sys.stdout, sys.stderr) == before
    text = Path(log.path).read_text(encoding="utf-8")
    assert "epoch 1 done" in text
    assert "Error: DATASET.ROOT /nowhere does not exist: pass --root" in text
    assert "Traceback (most recent call last)" in text and "test_logger.py" in text


def test_warnings_and_stderr_reach_the_file_and_the_console(tmp_path, capsys):
    with warnings.catch_warnings(record=True) as caught:  # whoever shows warnings outside the run (pytest here)
        warnings.simplefilter("always")
        with RunLog(str(tmp_path), console="quiet") as log:
            warnings.warn("the teacher was trained on another dataset", UserWarning, stacklevel=1)
            print("a message for stderr", file=sys.stderr)
    text = Path(log.path).read_text(encoding="utf-8")
    assert "UserWarning: the teacher was trained on another dataset" in text
    assert [str(w.message) for w in caught] == ["the teacher was trained on another dataset"]  # handed on
    for shown in (text, capsys.readouterr().err):
        assert "a message for stderr" in shown


def test_warnings_reach_the_console_stderr_without_a_recorder(tmp_path):
    code = (
        "import sys, warnings\n"
        "from dassl.utils.logger import RunLog\n"
        f"with RunLog({str(tmp_path)!r}, console='quiet'):\n"
        "    warnings.warn('shown on the console', UserWarning)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("UserWarning: shown on the console") == 1
    assert "UserWarning: shown on the console" in (tmp_path / "log.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("level", "shown"),
    [("verbose", {"print", "detail", "announce"}), ("normal", {"print", "announce"}), ("quiet", {"announce"}),
     ("off", set())],
)  # fmt: skip
def test_console_level_filters_the_console_never_the_file(tmp_path, capsys, level, shown):
    with RunLog(str(tmp_path), console=level) as log:
        print("print")
        detail("detail")
        announce("announce")
    assert Path(log.path).read_text(encoding="utf-8").split() == ["print", "detail", "announce"]
    assert set(capsys.readouterr().out.split()) == shown


def test_outside_a_run_detail_and_announce_just_print(capsys):
    detail("a")
    announce("b")
    assert capsys.readouterr().out == "a\nb\n"
    assert console_stream() is sys.stderr


def test_an_existing_log_is_kept_and_an_unknown_level_is_refused(tmp_path):
    (tmp_path / "log.txt").write_text("the previous run\n", encoding="utf-8")
    with RunLog(str(tmp_path)) as log:
        print("the new run")
    assert (tmp_path / "log.txt").read_text(encoding="utf-8") == "the previous run\n"
    assert Path(log.path).name.startswith("log.txt-")
    with pytest.raises(ValueError, match="console level must be one of"):
        RunLog(str(tmp_path), console="loud")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_log_survives_a_killed_process(tmp_path, sig):
    """Every printed line is on disk at once (line-buffered), so a killed run's log says how far it got."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from dassl.utils.logger import RunLog
        with RunLog({str(tmp_path)!r}):
            for i in range(3):
                print(f"line {{i}}")
            print("ready", file=sys.stderr)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().strip() == "ready"
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.time() + 5
    text = ""
    while time.time() < deadline and "ready" not in text:
        text = (tmp_path / "log.txt").read_text(encoding="utf-8")
    assert text == "line 0\nline 1\nline 2\nready\n"


def test_setup_logger_is_a_run_log_that_the_next_call_closes(tmp_path, capsys):
    """Dassl's process-wide call (for upstream-style scripts): one RunLog at a time, the console back at the end."""
    from dassl.utils import setup_logger
    from dassl.utils.logger import _PROCESS_LOG, _close_process_log

    before = (sys.stdout, sys.stderr)
    first = setup_logger(str(tmp_path / "a"))
    print("run a")
    second = setup_logger(str(tmp_path / "b"))
    print("run b")
    _close_process_log(_PROCESS_LOG[-1])
    print("after")
    assert (sys.stdout, sys.stderr) == before and not _PROCESS_LOG
    assert Path(first).read_text(encoding="utf-8") == "run a\n"
    assert Path(second).read_text(encoding="utf-8") == "run b\n"
    assert capsys.readouterr().out == "run a\nrun b\nafter\n"


def test_the_toolkit_never_replaces_the_streams_for_good():
    """Only a run's own RunLog swaps sys.stdout (and gives it back); nothing outside the logger calls setup_logger."""
    callers = [
        path.relative_to(REPO_ROOT).as_posix()
        for folder in ("dassl", "trainers", "datasets", "tools", "promptkd", "benchmarks")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if "setup_logger(" in path.read_text(encoding="utf-8") or "sys.stdout =" in path.read_text(encoding="utf-8")
    ]
    assert callers == ["dassl/utils/logger.py"]
    assert "setup_logger" not in (REPO_ROOT / "train.py").read_text(encoding="utf-8")
