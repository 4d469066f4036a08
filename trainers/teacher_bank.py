"""The teacher feature bank: the PromptKD teacher's image features of every (image, view), computed once and shared
by every seed, sweep and student variant that trains on the same views (``TRAINER.PROMPTKD.TEACHER_BANK``).

Why: with the class vectors computed once, the teacher's image forward is two thirds of a student step, and it is
the same computation for every run over the same views. With views as data (``dassl/data/views.py``) a view is a
function of (bank seed, image, view), so its teacher feature can be stored; a student step is then the student's
forward/backward plus ``teacher_logits = logit_scale * bank_feature @ class_vectors.T``, exactly the expression
``PromptKD.compute_loss`` evaluates on the fly.

Layout of one bank (a folder named by its key, under the bank root)::

    manifest.json            key, key inputs (readable), layout, teacher logit scale, complete flag
    features-00000.npy       (images in shard, views, d_teacher)  float16 (default) or float32, L2-normalised
    params-00000.npy         (images in shard, views, n_params)   float64 view parameters (crop box, flip, ...)

Shards are ``.npy`` files read as memory maps; each is written to a temp file and renamed, so a killed build
resumes shard by shard. Under ``torchrun`` each process builds the shards ``k % world == rank``.

Keying (as the class-vector cache and the few-shot cache; docs/design.md#runs): the key is the SHA256 of the
content of everything a feature depends on: the images of the split (content SHA256 of each file, in order; cached
by path, size and mtime in ``image-sha256.json``), the teacher prompt checkpoint and CLIP weights (file SHA256),
the ``INPUT`` config (the transforms), the number of views, the bank seed, the view algorithm version, the feature
dtype, the teacher's precision and device type. Stale rule: a bank root holds one folder per key, so a changed
input finds no bank and builds a new one (with a note); the old one is never read. ``TEACHER_BANK`` naming one
bank's folder whose key inputs differ from the run's is refused, naming the inputs that differ.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dassl.data.views import VIEW_ALGORITHM, ViewDataset, ViewTransform, build_view_loader
from dassl.utils.distributed import barrier, rank, world_size
from dassl.utils.download import sha256_of_file
from dassl.utils.errors import UserError
from dassl.utils.tools import temp_file_beside, write_json
from dassl.utils.torchtools import preserved_rng_state

from .backbone import resolve_clip_checkpoint

BANK_FORMAT = 1
MANIFEST = "manifest.json"
HASH_CACHE = "image-sha256.json"
DTYPES = {"fp16": np.float16, "fp32": np.float32}


class TeacherBankError(UserError, ValueError):
    """A teacher bank that cannot be used as it is; the message says why and what to do."""


class StaleTeacherBankError(TeacherBankError):
    """A bank whose key inputs (images, teacher, transforms, views, seed, dtype) differ from the run's."""


# ---------------------------------------------------------------------------------------------- config


def uses_views(cfg) -> bool:
    """Whether the student trains on views as data (a bank, or ``VIEWS_AS_DATA`` on the fly)."""
    kd = cfg.TRAINER.PROMPTKD
    return bool(kd.TEACHER_BANK) or bool(kd.VIEWS_AS_DATA)


def view_train_loader(cfg, data_source):
    """The student's training loader over the bank's deterministic views (the run's seed picks each epoch's)."""
    kd = cfg.TRAINER.PROMPTKD
    if kd.BANK_VIEWS < 1:
        raise TeacherBankError(f"TRAINER.PROMPTKD.BANK_VIEWS must be >= 1, got {kd.BANK_VIEWS}")
    if kd.BANK_VIEWS < cfg.OPTIM.MAX_EPOCH:
        print(f"Note: {kd.BANK_VIEWS} views per image for {cfg.OPTIM.MAX_EPOCH} epochs: views repeat after epoch "
              f"{kd.BANK_VIEWS} (TRAINER.PROMPTKD.BANK_VIEWS >= OPTIM.MAX_EPOCH gives a fresh view every epoch)")  # fmt: skip
    return build_view_loader(
        cfg, data_source, n_views=kd.BANK_VIEWS, bank_seed=kd.BANK_SEED,
        batch_size=cfg.DATALOADER.TRAIN_X.BATCH_SIZE, sampler_type=cfg.DATALOADER.TRAIN_X.SAMPLER,
    )  # fmt: skip


def bank_root(cfg) -> Path:
    """``TEACHER_BANK`` as a folder: ``auto`` = ``<class-vector cache dir>/teacher_bank``."""
    kd = cfg.TRAINER.PROMPTKD
    if kd.TEACHER_BANK == "auto":
        cache = kd.CLASS_VECTOR_CACHE or os.environ.get("PROMPTKD_CACHE_DIR", "~/.cache/promptkd")
        return Path(cache).expanduser() / "teacher_bank"
    return Path(kd.TEACHER_BANK).expanduser()


# ---------------------------------------------------------------------------------------------- keys


def image_hashes(paths: list[str], cache_file: Path) -> list[str]:
    """Content SHA256 of each image, re-hashing only files whose size or mtime changed since ``cache_file``."""
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    hashes, changed = [], False
    todo = []
    for path in paths:
        full = os.path.abspath(path)
        stat = os.stat(full)
        entry = cache.get(full)
        if entry and entry[0] == stat.st_size and entry[1] == stat.st_mtime_ns:
            hashes.append(entry[2])
        else:
            hashes.append(None)
            todo.append((len(hashes) - 1, full, stat))
    for pos, full, stat in tqdm(todo, desc="hashing images", disable=len(todo) < 1000, leave=False):
        hashes[pos] = sha256_of_file(full)
        cache[full] = [stat.st_size, stat.st_mtime_ns, hashes[pos]]
        changed = True
    if changed:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_json(cache, str(cache_file))
        except OSError as err:  # a read-only bank root: the hashes are simply not cached
            print(f"Note: could not cache the image hashes in {cache_file} ({err})")
    return hashes


def _plain(value):
    """A yacs node / tuple as JSON-able plain data."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def bank_key_inputs(cfg, data_source, teacher_checkpoint: str, teacher_clip: str | os.PathLike, root: Path) -> dict:
    """Everything a bank feature depends on, in readable form (the manifest keeps it; the key is its hash)."""
    kd = cfg.TRAINER.PROMPTKD
    if kd.BANK_DTYPE not in DTYPES:
        raise TeacherBankError(f"TRAINER.PROMPTKD.BANK_DTYPE must be one of {list(DTYPES)}, got '{kd.BANK_DTYPE}'")
    if kd.BANK_SEED < 0:
        raise TeacherBankError(f"TRAINER.PROMPTKD.BANK_SEED must be >= 0, got {kd.BANK_SEED}")
    hashes = image_hashes([item.impath for item in data_source], root / HASH_CACHE)
    device = "cuda" if torch.cuda.is_available() and cfg.USE_CUDA else "cpu"
    return {
        "format": BANK_FORMAT,
        "view_algorithm": VIEW_ALGORITHM,
        "n_images": len(hashes),
        "images_sha256": hashlib.sha256("\n".join(hashes).encode("ascii")).hexdigest(),
        "teacher_checkpoint_sha256": sha256_of_file(teacher_checkpoint),
        "teacher_clip_sha256": sha256_of_file(teacher_clip),
        "teacher_name": kd.TEACHER_NAME,
        "input": _plain(cfg.INPUT),
        "views": int(kd.BANK_VIEWS),
        "bank_seed": int(kd.BANK_SEED),
        "dtype": kd.BANK_DTYPE,
        "teacher_precision": kd.PREC,
        "device": device,
        "token_layout": cfg.MODEL.BACKBONE.TOKEN_LAYOUT,
    }


def bank_key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode("utf-8")).hexdigest()[:24]


def _differences(recorded: dict, wanted: dict) -> list[str]:
    return [k for k in sorted(set(recorded) | set(wanted)) if recorded.get(k) != wanted.get(k)]


# ---------------------------------------------------------------------------------------------- the bank


class _Views(Dataset):
    """The (image, view) pairs of one shard, as items of a ``ViewDataset``."""

    def __init__(self, views: ViewDataset, pairs: list[tuple[int, int]]) -> None:
        self.views, self.pairs = views, pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, pos: int) -> dict:
        return self.views[self.pairs[pos]]


def _save_npy(array: np.ndarray, path: Path) -> None:
    """``np.save`` via a temp file beside ``path`` and a rename: a shard file is whole or absent."""
    fd, tmp = temp_file_beside(str(path))
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class TeacherBank:
    """One bank folder: open (checking its key), build or resume, and look features up by (index, view)."""

    def __init__(self, directory: Path, inputs: dict, shard_size: int) -> None:
        self.directory, self.inputs = directory, inputs
        self.key = bank_key(inputs)
        self.n_images, self.n_views = inputs["n_images"], inputs["views"]
        manifest = self._read_manifest()
        if manifest is not None:
            if manifest.get("inputs") != inputs or manifest.get("key") != self.key:
                raise StaleTeacherBankError(
                    f"The teacher bank {directory} was built for other inputs: "
                    f"{', '.join(_differences(manifest.get('inputs') or {}, inputs))} differ. A stale bank is never "
                    "used: set TRAINER.PROMPTKD.TEACHER_BANK to its parent folder (or auto) to build one for this run, "
                    "or restore the inputs it was built from."
                )
            shard_size = manifest["shard_size"]
        self.shard_size = shard_size
        self.manifest = manifest or {}
        self._shards: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def open(cls, root: Path, inputs: dict, shard_size: int) -> TeacherBank:
        """The bank for ``inputs``: ``root`` itself if it is a bank folder, else ``root/<key>`` (maybe empty)."""
        if (root / MANIFEST).is_file():
            return cls(root, inputs, shard_size)
        directory = root / bank_key(inputs)
        if not (directory / MANIFEST).is_file():
            others = sorted(p.name for p in root.glob("*") if (p / MANIFEST).is_file()) if root.is_dir() else []
            note = f" ({len(others)} bank(s) for other inputs there are not used)" if others else ""
            print(f"No teacher bank for these inputs under {root}{note}: building {directory.name}")
        return cls(directory, inputs, shard_size)

    # ------------------------------------------------------------------ layout

    @property
    def n_shards(self) -> int:
        return -(-self.n_images // self.shard_size)

    def _paths(self, shard: int) -> tuple[Path, Path]:
        return self.directory / f"features-{shard:05d}.npy", self.directory / f"params-{shard:05d}.npy"

    def _read_manifest(self) -> dict | None:
        try:
            return json.loads((self.directory / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as err:
            raise TeacherBankError(f"{self.directory / MANIFEST} is not valid JSON ({err}); delete the folder") from err

    def _shard_ok(self, shard: int) -> bool:
        rows = min(self.shard_size, self.n_images - shard * self.shard_size)
        try:
            features, params = (np.load(p, mmap_mode="r") for p in self._paths(shard))
        except (OSError, ValueError):
            return False
        return features.shape[:2] == params.shape[:2] == (rows, self.n_views)

    def missing_shards(self) -> list[int]:
        return [k for k in range(self.n_shards) if not self._shard_ok(k)]

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete")) and not self.missing_shards()

    def _write_manifest(self, **extra) -> None:
        self.manifest = {
            "format": BANK_FORMAT, "key": self.key, "inputs": self.inputs, "shard_size": self.shard_size,
            "n_shards": self.n_shards, **{k: v for k, v in self.manifest.items() if k not in ("complete",)}, **extra,
        }  # fmt: skip
        write_json(self.manifest, str(self.directory / MANIFEST))

    # ------------------------------------------------------------------ build

    def build(self, teacher, data_source, cfg, precision, device: torch.device) -> None:
        """Compute the missing shards (this process's share of them) with ``teacher`` in eval mode.

        Runs outside the run's random streams: whether the bank was there or not, the run draws the same numbers.
        """
        kd = cfg.TRAINER.PROMPTKD
        with preserved_rng_state():
            self.directory.mkdir(parents=True, exist_ok=True)
            if rank() == 0 and not self.manifest:
                self._write_manifest(complete=False)
            barrier()
            missing = self.missing_shards()
            mine = [k for k in missing if k % world_size() == rank()]
            views = ViewDataset(data_source, ViewTransform(cfg), kd.BANK_SEED)
            total = sum(min(self.shard_size, self.n_images - k * self.shard_size) for k in mine) * self.n_views
            if missing:
                print(f"Building the teacher bank {self.directory}: {len(missing)} of {self.n_shards} shard(s) "
                      f"missing, {total} views here ({world_size()} process(es))")  # fmt: skip
            teacher.train(False)
            progress = tqdm(total=total, desc="teacher bank", unit="view", disable=total == 0)
            for shard in mine:
                self._build_shard(shard, teacher, views, cfg, precision, device, progress)
            progress.close()
            barrier()
            if rank() == 0:
                still = self.missing_shards()
                if still:
                    raise TeacherBankError(f"teacher bank {self.directory}: shards {still} missing after the build")
                self._write_manifest(complete=True, logit_scale=float(teacher.logit_scale),
                                     param_names=views.transform.param_names)  # fmt: skip
            barrier()
            self.manifest = self._read_manifest() or {}

    def _build_shard(self, shard, teacher, views, cfg, precision, device, progress) -> None:
        kd = cfg.TRAINER.PROMPTKD
        start = shard * self.shard_size
        rows = min(self.shard_size, self.n_images - start)
        pairs = [(i, v) for i in range(start, start + rows) for v in range(self.n_views)]
        workers = cfg.DATALOADER.NUM_WORKERS
        loader = DataLoader(_Views(views, pairs), batch_size=kd.BANK_BATCH_SIZE, shuffle=False, num_workers=workers,
                            pin_memory=device.type == "cuda")  # fmt: skip
        features: np.ndarray | None = None
        params = np.zeros((rows, self.n_views, views.transform.n_params), dtype=np.float64)
        for batch in loader:
            with torch.no_grad(), precision.autocast():
                out = teacher.image_features(batch["img"].to(device, non_blocking=True)).float().cpu().numpy()
            if features is None:
                features = np.zeros((rows, self.n_views, out.shape[1]), dtype=DTYPES[self.inputs["dtype"]])
            local = batch["index"].numpy() - start
            features[local, batch["view"].numpy()] = out
            params[local, batch["view"].numpy()] = batch["view_params"].numpy()
            progress.update(len(local))
        _save_npy(params, self._paths(shard)[1])
        _save_npy(features, self._paths(shard)[0])

    # ------------------------------------------------------------------ read

    @property
    def logit_scale(self) -> torch.Tensor:
        """The teacher's ``logit_scale.exp()`` (float32, exactly the value ``FrozenTeacher.logit_scale`` gives)."""
        return torch.tensor(self.manifest["logit_scale"], dtype=torch.float32)

    def _shard(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        if shard not in self._shards:
            features, params = (np.load(p, mmap_mode="r") for p in self._paths(shard))
            self._shards[shard] = (features, params)
        return self._shards[shard]

    def features(self, index: torch.Tensor, view: torch.Tensor, params: torch.Tensor | None = None) -> torch.Tensor:
        """The teacher features (batch, d) float32 of these (image, view) pairs; ``params`` (the loader's view
        parameters) must match the recorded ones, so a bank never serves features of other pixels."""
        rows, recorded = [], []
        for i, v in zip(index.tolist(), view.tolist()):
            shard, row = divmod(i, self.shard_size)
            features, stored = self._shard(shard)
            rows.append(np.asarray(features[row, v], dtype=np.float32))
            recorded.append(stored[row, v])
        if params is not None and not np.array_equal(np.stack(recorded), params.numpy(), equal_nan=True):
            raise StaleTeacherBankError(
                f"The views of this batch differ from those recorded in the teacher bank {self.directory} (images "
                f"{index.tolist()[:4]}...): the loader's transforms are not the bank's. Rebuild it (delete the folder)."
            )
        return torch.from_numpy(np.stack(rows))

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.glob("*.npy"))


def open_teacher_bank(trainer) -> TeacherBank:
    """The run's bank, built or resumed first when it is missing or partial (the teacher runs only for that)."""
    cfg, kd = trainer.cfg, trainer.cfg.TRAINER.PROMPTKD
    data_source = trainer.dm.dataset.train_x
    root = bank_root(cfg)
    teacher_clip = resolve_clip_checkpoint(
        kd.TEACHER_NAME, kd.TEACHER_BACKBONE_PATH, path_key="TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH"
    )
    inputs = bank_key_inputs(cfg, data_source, trainer.teacher_ckpt, teacher_clip, root)
    bank = TeacherBank.open(root, inputs, kd.BANK_SHARD_SIZE)
    if not bank.complete:
        teacher = trainer.teacher
        if teacher is None:
            with preserved_rng_state():
                teacher = trainer.precision.cast_frozen(trainer.build_teacher())  # as on the fly: stored precision
        bank.build(teacher, data_source, cfg, trainer.precision, trainer.device)
    print(f"Teacher features from the bank {bank.directory} ({bank.n_images} images x {bank.n_views} views, "
          f"{bank.inputs['dtype']})")  # fmt: skip
    return bank


__all__ = ["TeacherBank", "TeacherBankError", "StaleTeacherBankError", "open_teacher_bank", "bank_key_inputs",
           "bank_key", "bank_root", "uses_views", "view_train_loader", "image_hashes"]  # fmt: skip
