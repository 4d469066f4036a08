"""Check our implementation against golden fixtures made with the original code.

    python tools/check_golden.py ../shared/golden/promptsrc [../shared/golden/promptkd ...]

For each fixture directory (format: ``manifest.json`` + ``init.pt``, ``inputs.pt``, ``outputs.pt``, ``grads.pt``,
``after_step.pt``, ...; see the golden README) it rebuilds the model from the fixture's own CLIP checkpoint,
class names, prompt depths, batch and loss settings (read from the manifest, nothing assumed), loads the
initial trainable tensors, runs one training step exactly as the trainer does, and compares every recorded
tensor with the manifest's tolerance rule: ``max|ours - golden| <= tol * max|golden|`` per tensor. It prints
the error per quantity and exits non-zero on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root is not on sys.path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from yacs.config import CfgNode  # noqa: E402

from dassl.optim import build_optimizer  # noqa: E402
from trainers.backbone import load_clip  # noqa: E402
from trainers.prompting import freeze_all_but  # noqa: E402
from trainers.promptkd import PromptKDStudent, kd_loss  # noqa: E402
from trainers.promptsrc import PromptSRCCLIP, gpa_weights, promptsrc_loss  # noqa: E402
from trainers.teacher import build_teacher, read_teacher_state  # noqa: E402

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


def _optim_cfg(config: dict, lr: float) -> CfgNode:
    node = CfgNode()
    for key in ("NAME", "MOMENTUM", "WEIGHT_DECAY", "SGD_DAMPNING", "SGD_NESTEROV"):
        node[key] = config[f"OPTIM.{key}"]
    node.LR = lr
    node.RMSPROP_ALPHA, node.ADAM_BETA1, node.ADAM_BETA2 = 0.99, 0.9, 0.999
    node.STAGED_LR, node.NEW_LAYERS, node.BASE_LR_MULT = False, (), 0.1
    return node


def _tolerances(manifest: dict) -> tuple[dict[str, float], dict[str, str]]:
    groups = {name: spec["tol"] for name, spec in manifest["tolerances"]["recommended"].items()}
    per_tensor = {key: spec["group"] for key, spec in manifest["error_budget"]["per_tensor"].items()}
    return groups, per_tensor


def run_promptsrc(fixture: Path, manifest: dict) -> dict[str, torch.Tensor]:
    """One PromptSRC training step from the fixture's init state; returns ``{"file/key": tensor}``."""
    cfg = manifest["config"]
    clip_model = load_clip(cfg["MODEL.BACKBONE.NAME"], str(_resolve(fixture, manifest["clip_checkpoint"])))
    for p in clip_model.parameters():
        p.requires_grad_(False)
    classnames = manifest["classnames"]
    model = PromptSRCCLIP(
        clip_model,
        classnames,
        n_ctx_text=cfg["TRAINER.PROMPTSRC.N_CTX_TEXT"],
        n_ctx_vision=cfg["TRAINER.PROMPTSRC.N_CTX_VISION"],
        depth_text=cfg["TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT"],
        depth_vision=cfg["TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION"],
        ctx_init=cfg["TRAINER.PROMPTSRC.CTX_INIT"],
    )
    freeze_all_but(model, model.trainable_modules())
    model.compute_fixed_embeddings(clip_model, classnames)

    key_map = model.upstream_key_map()
    init = _load(fixture, "init.pt")
    missing = sorted(set(key_map) - set(init))
    if missing:
        raise KeyError(f"{fixture}/init.pt lacks trainable tensors for this config: {missing}")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for upstream, ours in key_map.items():
            params[ours].copy_(init[upstream])

    inputs = _load(fixture, "inputs.pt")
    images, labels = inputs["images"], inputs["labels"]
    results: dict[str, torch.Tensor] = {
        "buffers/tokenized_prompts": model.prompt_learner.tokenized_prompts,
        "buffers/prompt_learner.token_prefix": model.prompt_learner.token_prefix,
        "buffers/prompt_learner.token_suffix": model.prompt_learner.token_suffix,
        "buffers/prompt_learner.fixed_embeddings": model.fixed_embeddings,
    }
    model.eval()
    with torch.no_grad():
        results["outputs/eval_logits"] = model(images)
    model.train()

    out = model.forward_train(images)
    terms = promptsrc_loss(out, labels, manifest["text_loss_weight"], manifest["image_loss_weight"])
    with torch.no_grad():
        results["outputs/text_features_unnormalized"] = model.encode_text()
        results["outputs/image_features_unnormalized"] = model.encode_image(images)
        results["outputs/zs_image_features_unnormalized"] = model.encode_image(images, prompts=False)
    for key, value in out.items():
        results[f"outputs/{key}"] = value
    for key, value in terms.items():
        results[f"outputs/{key}"] = value
    results["outputs/l1_text_mean"] = terms["L_scl_text"] / manifest["text_loss_weight"]
    results["outputs/l1_image_mean"] = terms["L_scl_image"] / manifest["image_loss_weight"]

    optimizer = build_optimizer(model, _optim_cfg(cfg, manifest["lr_used"]))
    optimizer.zero_grad()
    terms["loss"].backward()
    for upstream, ours in key_map.items():
        results[f"grads/{upstream}"] = params[ours].grad.clone()
    optimizer.step()
    for upstream, ours in key_map.items():
        results[f"after_step/{upstream}"] = params[ours].detach().clone()
        results[f"momentum_buffer/{upstream}"] = optimizer.state[params[ours]]["momentum_buffer"].clone()
    results["manifest/gpa_weights"] = torch.tensor(
        gpa_weights(cfg["OPTIM.MAX_EPOCH"], cfg["TRAINER.PROMPTSRC.GPA_MEAN"], cfg["TRAINER.PROMPTSRC.GPA_STD"])
    )
    return results


def run_promptkd(fixture: Path, manifest: dict) -> dict[str, torch.Tensor]:
    """One PromptKD step (teacher from the fixture's checkpoint file) + eval at init and after the step."""
    cfg = manifest["config"]
    classnames = manifest["classnames"]
    kd_cfg = {key.split(".")[-1]: value for key, value in cfg.items() if key.startswith("TRAINER.PROMPTKD.")}
    teacher_clip = load_clip(kd_cfg["TEACHER_NAME"], str(_resolve(fixture, manifest["teacher_clip_checkpoint"])))
    state = read_teacher_state(_resolve(fixture, manifest["teacher_checkpoint_file"]))
    teacher = build_teacher(teacher_clip, classnames, state, kd_cfg["CTX_INIT"])
    class_vectors = teacher.class_vectors()

    student_clip = load_clip(cfg["MODEL.BACKBONE.NAME"], str(_resolve(fixture, manifest["student_clip_checkpoint"])))
    for p in student_clip.parameters():
        p.requires_grad_(False)
    model = PromptKDStudent(
        student_clip, kd_cfg["N_CTX_VISION"], kd_cfg["PROMPT_DEPTH_VISION"], class_vectors.shape[1], kd_cfg["PROJECT_LAYER"]
    )
    freeze_all_but(model, model.trainable_modules())
    key_map = model.upstream_key_map()
    init = _load(fixture, "init.pt")
    own = model.state_dict()
    missing = sorted(set(key_map) - set(init))
    if missing:
        raise KeyError(f"{fixture}/init.pt lacks tensors for this config: {missing}")
    model.load_state_dict({ours: init[up].reshape(own[ours].shape) for up, ours in key_map.items()}, strict=False)
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())

    inputs = _load(fixture, "inputs.pt")
    images, eval_images = inputs["images"], inputs["eval_images"]
    n_base = -(-len(classnames) // 2)
    cross = manifest.get("modal", cfg.get("TRAINER.MODAL")) == "cross"
    slices = {"val": slice(None) if cross else slice(None, n_base), "test": slice(None) if cross else slice(n_base, None)}
    student_scale = model.logit_scale.exp()

    def eval_logits(tag: str) -> None:
        model.eval()
        with torch.no_grad():
            features = model(eval_images)
            for split, part in slices.items():
                results[f"outputs/eval_{tag}_{split}_logits"] = student_scale * features @ class_vectors[part].t()
        model.train()

    results: dict[str, torch.Tensor] = {"outputs/class_vectors": class_vectors}
    eval_logits("init")
    model.train()
    with torch.no_grad():
        teacher_features = teacher.image_features(images)
        teacher_logits = teacher.logit_scale * teacher_features @ class_vectors.t()
    visual = model.visual_features(images)
    features = torch.nn.functional.normalize(model.projector(visual), dim=-1)
    student_logits = student_scale * features @ class_vectors.t()
    terms = kd_loss(student_logits, teacher_logits, manifest["temperature"], manifest["kd_weight"])
    if "alt_kd" in manifest:
        alt = kd_loss(student_logits.detach(), teacher_logits, manifest["alt_kd"]["temperature"], manifest["alt_kd"]["kd_weight"])
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

    optimizer = build_optimizer(model, _optim_cfg(cfg, manifest["lr_used"]))
    optimizer.zero_grad()
    terms["loss"].backward()
    for upstream, ours in key_map.items():
        if ours in params:
            results[f"grads/{upstream}"] = params[ours].grad.reshape(init[upstream].shape).clone()
    optimizer.step()
    for upstream, ours in key_map.items():
        tensor = params[ours] if ours in params else buffers[ours]
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
