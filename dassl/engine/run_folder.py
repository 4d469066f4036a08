"""A run folder as a record people cite: one run at a time, resumed only under the config it was started with,
and its evaluations kept in a durable, append-only record from which ``results.json`` is derived.

Files (next to ``log.txt``, ``config.yaml`` and the checkpoint folders):

* ``run.json``          the fingerprint of the result-determining config (written once, when the folder is new);
* ``evaluations.jsonl`` one evaluation per line, flushed and fsynced before ``results.json`` is rewritten;
* ``.lock``             held (``flock``) by the process that runs in the folder; the kernel releases it when
                        the process dies, so a lock left behind by a killed run is taken over with a note.

A restart replays nothing it cannot reproduce: the record is rolled back to the state of the checkpoint it resumes
from (``rollback``), and the epochs after it are trained and evaluated again, bit-identically.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import glob
import json
import os
import os.path as osp
import socket
from collections.abc import Callable, Iterable

import yaml

from dassl.utils.download import sha256_of_file
from dassl.utils.errors import RunStateError
from dassl.utils.tools import atomic_write_text, mkdir_if_missing

__all__ = [
    "RunFolder",
    "open_run_folder",
    "eval_only_fingerprint",
    "config_fingerprint",
    "describe_differences",
    "NON_RESULT_KEYS",
    "RECORD_FILE",
    "RUN_FILE",
]

RECORD_FILE = "evaluations.jsonl"
RUN_FILE = "run.json"
LOCK_FILE = ".lock"

# Config keys that cannot change a number: where things are, how often to print or save, how many loader workers.
NON_RESULT_KEYS = (
    "OUTPUT_DIR",
    "RESUME",
    "EXPERIMENT",
    "DATASET.ROOT",
    "DATALOADER.NUM_WORKERS",
    "TRAIN.PRINT_FREQ",
    "TRAIN.CHECKPOINT_FREQ",
    "TRAIN.SAVE_LAST",
    "VERBOSE",
    "TRAINER.PROMPTKD.CLASS_VECTOR_CACHE",
)


def _flatten(node, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def config_fingerprint(cfg, extra: dict | None = None) -> dict[str, object]:
    """The result-determining config as flat ``{KEY: value}`` (yaml-normalised), plus ``extra`` entries
    (e.g. ``--eval-only`` and the files it loads)."""
    flat = _flatten(yaml.safe_load(cfg.dump()))
    fingerprint = {k: v for k, v in sorted(flat.items()) if k not in NON_RESULT_KEYS}
    fingerprint.update(extra or {})
    return fingerprint


def _own_trainer_node(fingerprint: dict) -> str | None:
    """``TRAINER.<NODE>.`` of the run's trainer (its ``CONFIG_NODE``), or None when it is not registered."""
    from .build import TRAINER_REGISTRY

    name = fingerprint.get("TRAINER.NAME")
    if not isinstance(name, str) or name not in TRAINER_REGISTRY.registered_names():
        return None
    node = getattr(TRAINER_REGISTRY.get(name), "CONFIG_NODE", None) or name.upper()
    return f"TRAINER.{node}."


def describe_differences(old: dict, new: dict) -> list[str]:
    """``KEY: old -> new`` for every key whose value differs (or exists on one side only).

    One exception: a key of another trainer's node that exists on one side only. It comes from a method registered
    in one process and not the other (a plugin, ``train.py --plugin`` / ``PROMPTKD_PLUGINS``), and the run's own
    trainer cannot read a node that may be missing, so it cannot have changed a number.
    """
    missing = object()
    own = _own_trainer_node(new)
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, missing), new.get(key, missing)
        one_sided = a is missing or b is missing
        foreign_node = key.startswith("TRAINER.") and key.count(".") >= 2 and own is not None and not key.startswith(own)
        if one_sided and foreign_node:
            continue
        if a != b:
            shown = ["(absent)" if v is missing else repr(v) for v in (a, b)]
            lines.append(f"{key}: {shown[0]} -> {shown[1]}")
    return lines


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class RunFolder:
    """The lock, the fingerprint and the evaluation record of one output folder."""

    def __init__(self, path: str) -> None:
        self.path = osp.abspath(path)
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ lock

    def acquire(self) -> None:
        """Take the folder's lock or refuse: two runs in one folder would mix their checkpoints and results."""
        mkdir_if_missing(self.path)
        lock_path = osp.join(self.path, LOCK_FILE)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_text(lock_path).strip() or "unknown process"
            os.close(fd)
            raise RunStateError(
                f"{self.path} is in use by another run ({holder}). Wait for it to finish, or give this run another "
                "--output-dir."
            ) from None
        previous = os.read(fd, 4096).decode("utf-8", "replace").strip()
        if previous:
            print(f"Note: taking over the lock of a run that ended without releasing it ({previous})")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        started = datetime.datetime.now().isoformat(timespec="seconds")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode())
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            os.remove(osp.join(self.path, LOCK_FILE))
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._lock_fd = None

    # ------------------------------------------------------------------ state

    def is_empty(self) -> bool:
        """No run has been started here (a lock file or an empty log does not count)."""
        if not osp.isdir(self.path):
            return True
        return not any(name not in (LOCK_FILE,) for name in os.listdir(self.path))

    def stored_fingerprint(self) -> dict | None:
        try:
            with open(osp.join(self.path, RUN_FILE), encoding="utf-8") as f:
                return json.load(f)["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def check_fingerprint(self, fingerprint: dict, force_hint: str = "FORCE=1 (scripts) or --force (train.py)") -> None:
        """Refuse to continue a run that was started under another result-determining config."""
        stored = self.stored_fingerprint()
        if stored is None:
            if not self.is_empty() and (self.read_record() or self.has_checkpoint()):
                raise RunStateError(
                    f"{self.path} holds a run without {RUN_FILE} (made by an older version or another tool), so it "
                    f"cannot be checked that it was started with this config. Use another --output-dir, or "
                    f"{force_hint} to set it aside and start afresh."
                )
            return
        differences = describe_differences(stored, fingerprint)
        if differences:
            shown = "\n  ".join(differences[:20]) + ("\n  ..." if len(differences) > 20 else "")
            raise RunStateError(
                f"{self.path} holds a run started with another config; continuing it would label its numbers with "
                f"settings they were not made with. Differences (folder -> this command):\n  {shown}\n"
                f"Either give this run another --output-dir, or use {force_hint} to set the old run aside "
                "(it is kept, renamed) and start afresh."
            )

    def write_fingerprint(self, fingerprint: dict, command: list[str] | None = None) -> None:
        payload = {"fingerprint": fingerprint, "command": command or []}
        atomic_write_text(osp.join(self.path, RUN_FILE), json.dumps(payload, indent=2, default=str) + "\n")

    def has_checkpoint(self) -> bool:
        return bool(glob.glob(osp.join(self.path, "*", "checkpoint")))

    def is_finished(self) -> bool:
        """The record holds the final (deployed-model) evaluation and ``results.json`` was written from it (a kill
        between the two leaves the run unfinished: the restart repeats the final tests and writes the file)."""
        record = self.read_record()
        if not any(entry.get("final") for entry in record):
            return False
        try:
            with open(osp.join(self.path, "results.json"), encoding="utf-8") as f:
                results = json.load(f)
            written = results.get("evaluations")
        except (OSError, ValueError, AttributeError):
            return False
        # "finished": the protocol's main test of the deployed model is in (not just its first final evaluation)
        if not results.get("finished", "schema_version" not in results):
            return False
        return json.dumps(written, sort_keys=True) == json.dumps(record, sort_keys=True)

    def set_aside(self) -> str | None:
        """Rename a used folder to ``<path>.old-<timestamp>`` (nothing is deleted); returns the new name.

        Called under the lock, which moves with the folder and is then dropped: ``acquire`` takes a new one.
        """
        if self.is_empty():
            return None
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        target = f"{self.path}.old-{stamp}"
        counter = 1
        while osp.exists(target):
            counter += 1
            target = f"{self.path}.old-{stamp}-{counter}"
        os.replace(self.path, target)
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.remove(osp.join(target, LOCK_FILE))
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
        return target

    def remove_stale_temp_files(self) -> list[str]:
        """Temp files of writes interrupted by a kill (``.<name>.<random>.tmp``); only call under the lock."""
        stale = glob.glob(osp.join(self.path, ".*.tmp")) + glob.glob(osp.join(self.path, "*", ".*.tmp"))
        for path in stale:
            with contextlib.suppress(OSError):
                os.remove(path)
        return sorted(stale)

    # ------------------------------------------------------------------ the evaluation record

    @property
    def record_path(self) -> str:
        return osp.join(self.path, RECORD_FILE)

    def read_record(self) -> list[dict]:
        """Every complete line of the record (a line cut by a kill is ignored: it was never acknowledged)."""
        entries = []
        try:
            with open(self.record_path, encoding="utf-8") as f:
                for line in f:
                    if not line.endswith("\n"):
                        break
                    with contextlib.suppress(ValueError):
                        entries.append(json.loads(line))
        except FileNotFoundError:
            pass
        return entries

    def rewrite_record(self, entries: Iterable[dict]) -> list[dict]:
        """Replace the record atomically (used to roll it back to a checkpoint's state)."""
        entries = list(entries)
        atomic_write_text(self.record_path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
        return entries

    def rollback(self, keep: Callable[[dict], bool]) -> list[dict]:
        """Keep the entries for which ``keep`` is true (those the resumed state has already made)."""
        return self.rewrite_record(e for e in self.read_record() if keep(e))

    def append(self, entry: dict) -> None:
        """Append one evaluation durably: written, flushed and fsynced before this returns."""
        mkdir_if_missing(self.path)
        existed = osp.exists(self.record_path)
        with open(self.record_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if not existed:
            _fsync_dir(self.path)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def eval_only_fingerprint(model_dir: str, load_epoch: int | None) -> dict[str, object]:
    """What an evaluation depends on besides the config: the flags and the content of the files it loads."""
    pattern = "model-best.pth.tar" if load_epoch is None else f"model.pth.tar-{load_epoch}"
    files = sorted(glob.glob(osp.join(model_dir, "*", pattern))) if model_dir else []
    return {
        "--eval-only": True,
        "--model-dir": model_dir,
        "--load-epoch": load_epoch,
        "model files": {osp.relpath(f, model_dir): sha256_of_file(f) for f in files},
    }


def open_run_folder(cfg, extra: dict | None = None, force: bool = False, command: list[str] | None = None):
    """Lock ``cfg.OUTPUT_DIR`` for this run and check what it holds; returns ``(folder, finished)``.

    * ``force``: a used folder is renamed to ``<dir>.old-<timestamp>`` first (kept, never deleted);
    * a folder with a run of another result-determining config is refused (``RunStateError`` naming the keys);
    * ``finished``: it holds this config's finished run, which the caller leaves untouched.
    """
    folder = RunFolder(cfg.OUTPUT_DIR)
    fingerprint = config_fingerprint(cfg, extra)
    folder.acquire()
    try:
        if force and not folder.is_empty():
            moved = folder.set_aside()
            print(f"--force: the previous run in {folder.path} is kept as {moved}; starting afresh")
            folder.acquire()
        if not folder.is_empty():
            folder.check_fingerprint(fingerprint)
            if folder.is_finished():
                return folder, True
        if folder.stored_fingerprint() is None:
            folder.write_fingerprint(fingerprint, command)
    except BaseException:
        folder.release()
        raise
    return folder, False
