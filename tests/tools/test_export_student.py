"""tools/export_student.py: the Hugging Face layout, loaded in a fresh process without the toolkit, and ONNX."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.tools.test_predict import _eval_only
from tools.export_student import ONNX_ATOL, export_student, read_accuracies

# Run in a fresh interpreter from the export folder; every toolkit package is blocked, so an import of one fails.
LOAD_ELSEWHERE = """
import importlib.abc, json, sys
BLOCKED = ("dassl", "trainers", "tools", "promptkd", "datasets", "train")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked toolkit module {name}")
sys.meta_path.insert(0, Block())
import torch
sys.path.insert(0, ".")  # the export folder, as its model card says (-I keeps the repository and cwd off the path)
from promptkd_student import from_pretrained
model = from_pretrained(".")
assert model.visual.transformer.batch_first is False  # the layout it was trained in (config.json)
x = torch.load("input.pt", weights_only=True)
torch.save(model(x), "logits.pt")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)))
"""


def test_export_loads_elsewhere_and_matches_the_trainer_and_onnx(trained_student, tmp_path):
    demo, run = trained_student
    out = tmp_path / "export"
    config = export_student(str(run), out, onnx=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "model.onnx", "model.safetensors", "promptkd_student.py"
    ]  # fmt: skip
    saved = json.loads((out / "config.json").read_text())
    assert saved["classnames"] == config["classnames"] and len(saved["classnames"]) == 12
    assert saved["preprocess"]["resolution"] == [112, 112] and saved["preprocess"]["interpolation"] == "bicubic"
    assert saved["design"] == {"n_ctx": 4, "depth": 3, "project_layers": 2, "out_dim": 768,
                               "token_layout": "tokens_first"}  # the layout it was trained in
    assert saved["backbone"]["name"] == "ViT-B/16" and len(saved["backbone"]["sha256"]) == 64
    from safetensors.torch import load_file

    tensors = load_file(str(out / "model.safetensors"))
    assert {"class_vectors", "logit_scale", "prompts.layer0", "projector.0.weight", "visual.conv1.weight"} <= set(tensors)
    results = json.loads((run / "results.json").read_text())
    card = (out / "README.md").read_text()
    assert f"| novel classes | {results['novel']['accuracy']:.2f} |" in card
    assert f"| base classes | {results['base']['accuracy']:.2f} |" in card

    # the trainer's own student on the same input (eval-only of the saved run)
    x = torch.randn(3, 3, 112, 112, generator=torch.Generator().manual_seed(3))
    trainer = _eval_only(demo, run, "eval_for_export")
    with torch.no_grad():
        expected = trainer.model.logit_scale.exp() * trainer.model(x) @ trainer.class_vectors.t()

    torch.save(x, out / "input.pt")
    proc = subprocess.run([sys.executable, "-I", "-c", LOAD_ELSEWHERE], cwd=out, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []  # no toolkit module was imported
    elsewhere = torch.load(out / "logits.pt", weights_only=True)
    torch.testing.assert_close(elsewhere, expected, rtol=0, atol=1e-5)

    import onnxruntime

    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(["logits"], {"image": x.numpy()})[0]
    assert onnx_logits.shape == (3, 12)
    assert np.abs(onnx_logits - expected.numpy()).max() <= ONNX_ATOL
    assert saved["onnx_max_abs_error"] <= ONNX_ATOL


def test_results_are_read_from_either_schema():
    assert read_accuracies({"base": {"accuracy": 80.0}, "novel": {"accuracy": 70.0}, "hm": 74.67,
                            "final": {"accuracy": 70.0}}) == {"base": 80.0, "novel": 70.0, "hm": 74.67}  # fmt: skip
    assert read_accuracies({"hm": {"accuracy": 74.0}}) == {"hm": 74.0}
    assert read_accuracies({"accuracy": {"accuracy": 65.5}, "final": {"accuracy": 65.5}}) == {"accuracy": 65.5}
    assert read_accuracies({"final": {"accuracy": 50.0}}) == {"final": 50.0}
    assert read_accuracies({"evaluations": []}) == {}


def test_a_student_of_another_format_is_refused(tmp_path):
    from trainers.student_record import StudentCheckpointError

    torch.save({"state_dict": {}}, tmp_path / "model.pth.tar-1")
    with pytest.raises(StudentCheckpointError, match="without a student record"):
        export_student(str(tmp_path), tmp_path / "out")
