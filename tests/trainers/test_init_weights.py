"""MODEL.INIT_WEIGHTS starts a prompt trainer from a checkpoint's tensors (as the original trainers do)."""

from __future__ import annotations

import pytest
import torch

from dassl.utils.torchtools import CheckpointNotFoundError
from tests.conftest import make_tiny_demo, run_tiny


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_tiny_demo(tmp_path_factory.mktemp("init_weights"), seed=4)


@pytest.mark.parametrize(("trainer", "config", "opts"), [
    ("CoOp", "CoOp/vit_b16", ()),
    ("VPT", "VPT/vit_b16_c2_ep5_batch4_4", ("TRAINER.VPT.PROMPT_DEPTH_VISION", "2")),
])  # fmt: skip
def test_init_weights_sets_the_starting_prompts(assets, tmp_path, trainer, config, opts):
    trained = run_tiny(assets, trainer, config, tmp_path / "trained", *opts)
    saved = torch.load(tmp_path / "trained" / trained.MODEL_NAME / "model.pth.tar-1", weights_only=True)["state_dict"]
    fresh = run_tiny(assets, trainer, config, tmp_path / "fresh", *opts, flags=("--no-train",))
    started = run_tiny(assets, trainer, config, tmp_path / "started", *opts, "MODEL.INIT_WEIGHTS",
                       str(tmp_path / "trained"), flags=("--no-train",))  # fmt: skip
    start_state = started.model_state_dict(started.MODEL_NAME)
    fresh_state = fresh.model_state_dict(fresh.MODEL_NAME)
    assert set(saved) == set(start_state)
    for name, value in saved.items():
        assert torch.equal(start_state[name].float(), value.float()), name
    assert any(not torch.equal(fresh_state[k], saved[k]) for k in saved)  # the option changed where it starts


def test_a_bad_init_weights_path_is_a_clear_error(assets, tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="MODEL.INIT_WEIGHTS .*no such file or run folder"):
        run_tiny(assets, "CoOp", "CoOp/vit_b16", tmp_path / "bad", "MODEL.INIT_WEIGHTS", str(tmp_path / "missing.pth"),
                 flags=("--no-train",))  # fmt: skip
