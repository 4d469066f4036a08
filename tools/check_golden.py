"""Check our trainers against golden fixtures made with the original code.

    python tools/check_golden.py ../shared/golden/promptsrc [../shared/golden/promptkd ...]

For each fixture directory (format: ``manifest.json`` + ``init.pt``, ``inputs.pt``, ``outputs.pt``, ``grads.pt``,
``after_step.pt``, ...; docs/design.md#golden-fixtures) it builds the registered trainer exactly as ``train.py`` does, from
the fixture's own config files and overrides, CLIP checkpoints, data folder and teacher checkpoint (read from the
manifest, nothing assumed), loads the initial trainable tensors through the trainer's checkpoint loader, and runs
the trainer's own ``forward_backward`` once on the fixture's batch at the fixture's learning rate. The loss,
gradients, updated tensors and optimizer state graded are the trainer's; the intermediate quantities (features,
logits, loss terms) come from the same model methods and loss functions its ``compute_loss`` calls. Every recorded
tensor is compared with the manifest's tolerance rule: ``max|ours - golden| <= tol * max|golden|`` per tensor. It
prints the error per quantity and exits non-zero on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import train  # noqa: E402  (registers the trainers and datasets; builds the config as the CLI does)
from dassl.engine import build_trainer  # noqa: E402
from dassl.utils import RunLog  # noqa: E402
from trainers.promptkd import kd_loss  # noqa: E402
from trainers.promptsrc import gpa_weights, promptsrc_loss  # noqa: E402

EXACT = "exact"


@dataclass
class Comparison:
    name: str
    group: str
    error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.error <= self.tolerance


def relative_error(ours: torch.Tensor, golden: torch.Tensor) -> float:
    """max|ours - golden| / max|golden| (for scalars: |ours - golden| / |golden|)."""
    ours, golden = ours.detach().double().cpu(), golden.detach().double().cpu()
    if ours.shape != golden.shape:
        return float("inf")
    scale = golden.abs().max().item()
    diff = (ours - golden).abs().max().item()
    return diff / scale if scale > 0 else diff


def _resolve(fixture: Path, relative: str) -> Path:
    for base in (fixture, fixture.parent):
        if (base / relative).exists():
            return base / relative
    raise FileNotFoundError(f"{relative} not found next to {fixture} or in {fixture.parent}")


def _load(fixture: Path, name: str) -> dict[str, torch.Tensor]:
    path = fixture / name
    return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else {}


def _tolerances(manifest: dict) -> tuple[dict[str, float], dict[str, str]]:
    groups = {name: spec["tol"] for name, spec in manifest["tolerances"]["recommended"].items()}
    per_tensor = {key: spec["group"] for key, spec in manifest["error_budget"]["per_tensor"].items()}
    return groups, per_tensor


def _data_root(fixture: Path, work: Path) -> Path:
    """A data root that mirrors the fixture's (read-only) data folder through symlinks, so whatever the dataset
    code writes (few-shot caches) lands in ``work``."""
    source = _resolve(fixture, "data")
    root = work / "data"
    for dataset in source.iterdir():
        (root / dataset.name).mkdir(parents=True)
        for entry in dataset.iterdir():
            (root / dataset.name / entry.name).symlink_to(entry.resolve())
    return root


@contextmanager
def fixture_trainer(fixture: Path, manifest: dict, opts: list[str]) -> Iterator:
    """The trainer ``train.py`` would build for the fixture's config (CPU, fp32), in a temp output folder."""
    with tempfile.TemporaryDirectory(prefix="check_golden-") as tmp:
        work = Path(tmp)
        repo = Path(__file__).resolve().parents[1]
        argv = [
            "--root", str(_data_root(fixture, work)), "--seed", str(manifest["config"].get("SEED", 1)),
            "--trainer", manifest["config"]["TRAINER.NAME"], "--output-dir", str(work / "run"),
            "--dataset-config-file", str(repo / manifest["dataset_config_file"]),
            "--config-file", str(repo / manifest["config_file"]),
            *manifest["config_overrides"], "USE_CUDA", "False", "DATALOADER.NUM_WORKERS", "0", *opts,
        ]  # fmt: skip
        cfg = train.setup_cfg(train.build_parser().parse_args(argv))
        with RunLog(str(work / "log.txt"), console="quiet"):
            trainer = build_trainer(cfg)
        classnames = list(trainer.dm.dataset.classnames)
        if classnames != manifest["classnames"]:
            raise ValueError(f"{fixture}: the trainer's classes {classnames} are not the fixture's {manifest['classnames']}")
        init = _load(fixture, "init.pt")
        with RunLog(str(work / "log-load.txt"), console="quiet"):
            trainer.load_model_state_dict(trainer.MODEL_NAME, init)  # upstream names, through the checkpoint loader
        for group in trainer.optim.param_groups:
            group["lr"] = manifest["lr_used"]  # the schedule's value at the fixture's epoch
        trainer.batch_idx, trainer.num_batches = 0, 2  # not the last batch: no LR step, no GPA inside the step
        yield trainer


def _trainable(trainer, key_map: dict[str, str]) -> dict[str, torch.Tensor]:
    """{upstream name: our tensor} for the trainable parameters and buffers."""
    state = dict(trainer.model.named_parameters()) | dict(trainer.model.named_buffers())
    return {up: state[ours] for up, ours in key_map.items() if ours in state}


def run_promptsrc(fixture: Path, manifest: dict) -> dict[str, torch.Tensor]:
    """One step of the PromptSRC trainer from the fixture's init state; returns ``{"file/key": tensor}``."""
    cfg = manifest["config"]
    opts = ["MODEL.BACKBONE.PATH", str(_resolve(fixture, manifest["clip_checkpoint"]))]
    with fixture_trainer(fixture, manifest, opts) as trainer:
        model, node = trainer.model, trainer.method_cfg
        inputs = _load(fixture, "inputs.pt")
        images, labels = inputs["images"], inputs["labels"]
        results: dict[str, torch.Tensor] = {
            "buffers/tokenized_prompts": model.prompt_learner.tokenized_prompts,
            "buffers/prompt_learner.token_prefix": model.prompt_learner.token_prefix,
            "buffers/prompt_learner.token_suffix": model.prompt_learner.token_suffix,
            "buffers/prompt_learner.fixed_embeddings": model.fixed_embeddings,
        }
        trainer.set_model_mode("eval")
        results["outputs/eval_logits"] = trainer.model_inference(images)
        trainer.set_model_mode("train")
        with torch.no_grad():  # what compute_loss computes, term by term (no state changes in this model)
            out = model.forward_train(images)
            terms = promptsrc_loss(out, labels, node.TEXT_LOSS_WEIGHT, node.IMAGE_LOSS_WEIGHT)
            results["outputs/text_features_unnormalized"] = model.encode_text()
            results["outputs/image_features_unnormalized"] = model.encode_image(images)
            results["outputs/zs_image_features_unnormalized"] = model.encode_image(images, prompts=False)
        results.update({f"outputs/{key}": value for key, value in out.items()})
        results.update({f"outputs/{key}": value for key, value in terms.items()})
        results["outputs/l1_text_mean"] = terms["L_scl_text"] / node.TEXT_LOSS_WEIGHT
        results["outputs/l1_image_mean"] = terms["L_scl_image"] / node.IMAGE_LOSS_WEIGHT

        summary = trainer.forward_backward({"img": images, "label": labels})  # the trainer's own step
        results["outputs/loss"] = torch.tensor(summary["loss"])
        tensors = _trainable(trainer, model.upstream_key_map())
        for upstream, tensor in tensors.items():
            results[f"grads/{upstream}"] = tensor.grad.clone()
            results[f"after_step/{upstream}"] = tensor.detach().clone()
            results[f"momentum_buffer/{upstream}"] = trainer.optim.state[tensor]["momentum_buffer"].clone()
        results["manifest/gpa_weights"] = torch.tensor(trainer.gpa)
        expected_gpa = gpa_weights(cfg["OPTIM.MAX_EPOCH"], cfg["TRAINER.PROMPTSRC.GPA_MEAN"], cfg["TRAINER.PROMPTSRC.GPA_STD"])
        if trainer.max_epoch != cfg["OPTIM.MAX_EPOCH"] or len(expected_gpa) != len(trainer.gpa):
            raise ValueError(f"{fixture}: the trainer's MAX_EPOCH {trainer.max_epoch} is not the fixture's")
    return results


def run_promptkd(fixture: Path, manifest: dict) -> dict[str, torch.Tensor]:
    """One step of the PromptKD trainer (teacher from the fixture's checkpoint file) + eval at init and after."""
    with tempfile.TemporaryDirectory(prefix="check_golden-cache-") as cache:
        opts = [
            "MODEL.BACKBONE.PATH", str(_resolve(fixture, manifest["student_clip_checkpoint"])),
            "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH", str(_resolve(fixture, manifest["teacher_clip_checkpoint"])),
            "TRAINER.PROMPTKD.TEACHER_CKPT", str(_resolve(fixture, manifest["teacher_checkpoint_file"])),
            "TRAINER.PROMPTKD.CLASS_VECTOR_CACHE", cache,  # empty: the class vectors are computed, not read
        ]  # fmt: skip
        with fixture_trainer(fixture, manifest, opts) as trainer:
            return _promptkd_step(trainer, fixture, manifest)


def _promptkd_step(trainer, fixture: Path, manifest: dict) -> dict[str, torch.Tensor]:
    model, teacher, class_vectors = trainer.model, trainer.teacher, trainer.class_vectors
    inputs = _load(fixture, "inputs.pt")
    images, eval_images = inputs["images"], inputs["eval_images"]
    # the fixture's "val" / "test" logits: the protocol's selection (base classes) and main test (novel classes;
    # all in cross), scored by the trainer's own class_logits
    protocol = trainer.protocol
    evaluations = {"val": protocol.selection_split, "test": protocol.get(protocol.main)}
    student_scale = model.logit_scale.exp()
    results: dict[str, torch.Tensor] = {"outputs/class_vectors": class_vectors}

    def eval_logits(tag: str) -> None:
        trainer.set_model_mode("eval")
        with torch.no_grad():
            for split, evaluation in evaluations.items():
                columns = protocol.columns(trainer.partition, evaluation)
                results[f"outputs/eval_{tag}_{split}_logits"] = trainer.class_logits(eval_images, columns)
        trainer.set_model_mode("train")

    eval_logits("init")
    # what compute_loss computes, term by term; the projector's BatchNorm statistics are put back afterwards,
    # so that the trainer's own step below starts from the fixture's state
    running = {name: buffer.clone() for name, buffer in model.named_buffers()}
    with torch.no_grad():
        teacher_features = teacher.image_features(images)
        teacher_logits = teacher.logit_scale * teacher_features @ class_vectors.t()
        visual = model.visual_features(images)
        features = F.normalize(model.projector(visual), dim=-1)
        student_logits = student_scale * features @ class_vectors.t()
    for name, buffer in model.named_buffers():
        buffer.copy_(running[name])
    kd = trainer.method_cfg
    terms = kd_loss(student_logits, teacher_logits, kd.TEMPERATURE, kd.KD_WEIGHT)
    if "alt_kd" in manifest:
        alt = kd_loss(student_logits, teacher_logits, manifest["alt_kd"]["temperature"], manifest["alt_kd"]["kd_weight"])
        results.update({f"outputs/alt_{k}": v for k, v in alt.items()})
    results.update(
        {
            "outputs/teacher_image_features": teacher_features,
            "outputs/teacher_logits": teacher_logits,
            "outputs/student_visual_features_unnormalized": visual,
            "outputs/student_image_features": features,
            "outputs/student_logits": student_logits,
            "outputs/student_logit_scale_exp": student_scale,
        }
    )
    results.update({f"outputs/{k}": v for k, v in terms.items()})

    # the trainer's own step; the labels are never used by the loss
    batch = {"img": images, "label": inputs.get("labels", torch.zeros(len(images), dtype=torch.long))}
    summary = trainer.forward_backward(batch)
    results["outputs/loss"] = torch.tensor(summary["loss"])
    init = _load(fixture, "init.pt")
    for upstream, tensor in _trainable(trainer, model.upstream_key_map()).items():
        if tensor.grad is not None:
            results[f"grads/{upstream}"] = tensor.grad.reshape(init[upstream].shape).clone()
        results[f"after_step/{upstream}"] = tensor.detach().reshape(init[upstream].shape).clone()
    eval_logits("after_step")
    return results


RUNNERS = {"promptsrc": run_promptsrc, "promptkd": run_promptkd}


def check_fixture(fixture: str | Path) -> list[Comparison]:
    """Run our implementation on one fixture directory and compare every recorded quantity."""
    fixture = Path(fixture)
    manifest = json.loads((fixture / "manifest.json").read_text())
    kind = manifest.get("fixture")
    if kind not in RUNNERS:
        raise ValueError(f"{fixture}: unknown fixture kind {kind!r}; supported: {sorted(RUNNERS)}")
    ours = RUNNERS[kind](fixture, manifest)
    group_tol, tensor_group = _tolerances(manifest)

    golden: dict[str, torch.Tensor] = {}
    for name in ("outputs", "grads", "after_step", "momentum_buffer", "buffers"):
        for key, value in _load(fixture, f"{name}.pt").items():
            golden[f"{name}/{key}"] = value
    if "gpa_weights" in manifest:
        golden["manifest/gpa_weights"] = torch.tensor(manifest["gpa_weights"], dtype=torch.float64)

    comparisons = []
    for key, expected in golden.items():
        if key not in ours:
            comparisons.append(Comparison(key, "missing", float("inf"), 0.0))
            continue
        got = ours[key]
        if key.startswith("buffers/") and (not expected.is_floating_point() or "token_" in key):
            group, tol = EXACT, 0.0
            error = 0.0 if torch.equal(got.cpu(), expected) else float("inf")
        elif key.startswith("manifest/"):
            group, tol, error = "float64", 1e-12, relative_error(got, expected)
        elif tensor_group.get(key) == "zero_grad":
            # mathematically zero (bias before a train-mode BatchNorm): compare with the layer's weight gradient
            group, tol = "zero_grad", 1e-4
            reference = ours[key.rsplit(".", 1)[0] + ".weight"].abs().max().item()
            error = got.abs().max().item() / reference
        else:
            file = key.split("/", 1)[0]
            group = tensor_group.get(key, {"buffers": "forward", "momentum_buffer": "after_step"}.get(file, "forward"))
            tol = group_tol[group]
            error = relative_error(got, expected)
        comparisons.append(Comparison(key, group, error, tol))
    return comparisons


GOLDEN_ENV = "PROMPTKD_GOLDEN"


def golden_help(where: Path | str) -> str:
    """Why a golden folder is needed and how to point at one (the test suite's skip message says the same)."""
    return (
        f"golden fixtures not found at {where}. They are tensors recorded by running the original code "
        "(zhengli97/PromptKD with its Dassl engine, pure fp32, on tiny random CLIPs): one training step's inputs, "
        "outputs, gradients and updated weights of PromptSRC and PromptKD, and the engine's learning rates and "
        "few-shot picks; the parity checks compare this toolkit with them. They are not part of the repository; "
        f"the project keeps them next to the checkout (../shared/golden). Set {GOLDEN_ENV} to a copy (the folder "
        "with README.md, promptsrc/, promptkd/, engine/) or pass its sub-folders to tools/check_golden.py."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fixtures", nargs="+", help="fixture directories (each with a manifest.json)")
    args = parser.parse_args(argv)
    missing = [f for f in args.fixtures if not (Path(f) / "manifest.json").is_file()]
    if missing:
        print(f"Error: {golden_help(', '.join(missing))}", file=sys.stderr)
        return 2
    failed = 0
    torch.set_num_threads(max(1, torch.get_num_threads()))
    for fixture in args.fixtures:
        comparisons = check_fixture(fixture)
        print(f"\n{fixture}")
        width = max(len(c.name) for c in comparisons)
        for c in comparisons:
            status = "ok  " if c.ok else "FAIL"
            print(f"  {status} {c.name:<{width}}  {c.group:<10} error {c.error:.2e}  (tol {c.tolerance:.0e})")
        bad = [c for c in comparisons if not c.ok]
        failed += len(bad)
        print(f"  {len(comparisons) - len(bad)}/{len(comparisons)} within tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
