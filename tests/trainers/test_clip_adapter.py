"""CLIP-Adapter (trainers/clip_adapter.py): only the adapter trains and only the adapter is saved."""

from __future__ import annotations

import json
import math

import torch

from tests.conftest import make_tiny_demo, run_tiny
from trainers.clip_adapter import AdapterCLIP


def test_clip_adapter_trains_the_adapter_alone(tmp_path):
    assets = make_tiny_demo(tmp_path / "assets", seed=4)
    trainer = run_tiny(assets, "CLIPAdapter", "CoOp/vit_b16", tmp_path / "run", "DATASET.NUM_SHOTS", "4")
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["trainer"] == "CLIPAdapter" and math.isfinite(results["final"]["accuracy"])
    checkpoint = torch.load(tmp_path / "run" / "adapter" / "model.pth.tar-1", weights_only=True)
    assert sorted(checkpoint["state_dict"]) == ["adapter.0.weight", "adapter.2.weight"]  # the frozen CLIP is not saved
    model = trainer.model
    assert isinstance(model, AdapterCLIP) and not model.visual.conv1.weight.requires_grad
    torch.testing.assert_close(checkpoint["state_dict"]["adapter.0.weight"], model.adapter[0].weight.detach().cpu())
