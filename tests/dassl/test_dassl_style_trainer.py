"""A trainer and a dataset written against Dassl.pytorch run on our engine: train, save, evaluate, resume."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import train
from dassl.engine import build_trainer
from dassl.utils import set_random_seed
from tests.conftest import REPO_ROOT, USE_CUDA_OPT, make_tiny_demo
from tests.dassl import dassl_style_plugin  # noqa: F401  (registers ToyFolders and CoOpStyle)

MAX_EPOCH = 3


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_tiny_demo(tmp_path_factory.mktemp("assets"), layers=2, seed=5)


def _argv(data, ckpt, out, *extra: str) -> list[str]:
    return [
        "--root", str(data),
        "--seed", "1",
        "--trainer", "CoOpStyle",
        "--config-file", str(REPO_ROOT / "configs/trainers/CoOp/vit_b16.yaml"),
        "--output-dir", str(out),
        *extra,
        "DATASET.NAME", "ToyFolders",
        "DATASET.NUM_SHOTS", "4",
        "MODEL.BACKBONE.PATH", str(ckpt),
        "INPUT.SIZE", "(32, 32)",
        "OPTIM.MAX_EPOCH", str(MAX_EPOCH),
        "OPTIM.LR", "0.05",
        "DATALOADER.TRAIN_X.BATCH_SIZE", "16",
        "DATALOADER.TEST.BATCH_SIZE", "64",
        "DATALOADER.NUM_WORKERS", "0",
        "TRAINER.COOP.CTX_INIT", "a photo of a",
        "TRAINER.COOP.PREC", "fp32",
        "TRAIN.PRINT_FREQ", "1",
        "USE_CUDA", USE_CUDA_OPT,
    ]


def _build(argv: list[str]):
    cfg = train.setup_cfg(train.build_parser().parse_args(argv))
    set_random_seed(cfg.SEED)
    return build_trainer(cfg)


class Killed(Exception):
    pass


def test_train_save_and_eval_only(assets, tmp_path, capsys):
    data, ckpt = assets
    out = tmp_path / "train"
    trainer = train.run(train.build_parser().parse_args(_argv(data, ckpt, out)))
    captured = capsys.readouterr().out

    assert trainer.dm.dataset.num_classes == 12
    assert len(trainer.dm.dataset.train_x) == 12 * 4  # 4 shots per class
    assert f"epoch [{MAX_EPOCH}/{MAX_EPOCH}] batch [3/3]" in captured
    assert "Finish training" in captured and "* accuracy:" in captured

    model_dir = out / "prompt_learner"
    # the resume point is model-last, written after the epoch's other files (crash-consistent order)
    assert (model_dir / "checkpoint").read_text().strip() == "model-last.pth.tar"
    saved = torch.load(model_dir / f"model.pth.tar-{MAX_EPOCH}", weights_only=True)  # our files are weights-only
    assert saved["epoch"] == MAX_EPOCH
    assert set(saved["state_dict"]) == {"ctx", "token_prefix", "token_suffix"}
    torch.testing.assert_close(saved["state_dict"]["ctx"], trainer.model.prompt_learner.ctx.detach())
    assert not list(model_dir.glob("*.tmp")), "a temp file was left behind"

    # the warm-up epoch runs at 1e-5, then cosine from the base LR: the prompt has moved away from its init
    results = json.loads((out / "results.json").read_text())
    assert results["final"]["epoch"] == MAX_EPOCH
    trained_accuracy = results["final"]["accuracy"]

    # eval-only from the saved checkpoint, as base2new_test.sh does, gives the same accuracy
    evaluator = train.run(
        train.build_parser().parse_args(
            _argv(data, ckpt, tmp_path / "eval", "--eval-only", "--model-dir", str(out), "--load-epoch", str(MAX_EPOCH))
        )
    )
    torch.testing.assert_close(evaluator.model.prompt_learner.ctx, trainer.model.prompt_learner.ctx)
    eval_results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert eval_results["final"]["accuracy"] == pytest.approx(trained_accuracy)


def test_killed_run_resumes_at_the_right_epoch_with_identical_state(assets, tmp_path):
    data, ckpt = assets

    # reference: an uninterrupted run
    reference = _build(_argv(data, ckpt, tmp_path / "reference"))
    reference.train()
    reference_ctx = reference.model.prompt_learner.ctx.detach().clone()

    # the same run, killed right after epoch 2 was saved
    killed = _build(_argv(data, ckpt, tmp_path / "killed"))
    original_after_epoch = killed.after_epoch

    def after_epoch_then_die():
        original_after_epoch()
        if killed.epoch == 1:
            raise Killed

    killed.after_epoch = after_epoch_then_die
    with pytest.raises(Killed):
        killed.train()
    optim_at_kill = copy.deepcopy(killed.optim.state_dict())
    ctx_at_kill = killed.model.prompt_learner.ctx.detach().clone()
    assert (tmp_path / "killed" / "prompt_learner" / "checkpoint").read_text().strip() == "model-last.pth.tar"

    # a new process starts the same command again
    resumed = _build(_argv(data, ckpt, tmp_path / "killed"))
    seen = {}
    original_before_epoch = resumed.before_epoch

    def capture_state():
        if not seen:
            seen["epoch"] = resumed.epoch
            seen["optim"] = copy.deepcopy(resumed.optim.state_dict())
            seen["ctx"] = resumed.model.prompt_learner.ctx.detach().clone()
            seen["lr"] = resumed.get_current_lr()
        original_before_epoch()

    resumed.before_epoch = capture_state
    resumed.train()

    assert resumed.start_epoch == 2 and seen["epoch"] == 2
    torch.testing.assert_close(seen["ctx"], ctx_at_kill, rtol=0, atol=0)
    buffers = [s["momentum_buffer"] for s in seen["optim"]["state"].values()]
    expected = [s["momentum_buffer"] for s in optim_at_kill["state"].values()]
    assert len(buffers) == len(expected) == 1
    torch.testing.assert_close(buffers[0], expected[0], rtol=0, atol=0)
    assert seen["optim"]["param_groups"][0]["lr"] == optim_at_kill["param_groups"][0]["lr"] == seen["lr"]
    # same data order, same augmentations, same updates: bit-identical to the uninterrupted run
    torch.testing.assert_close(resumed.model.prompt_learner.ctx.detach(), reference_ctx, rtol=0, atol=0)


def test_explicit_resume_dir_is_used(assets, tmp_path, capsys):
    data, ckpt = assets
    first = _build(_argv(data, ckpt, tmp_path / "first"))
    first.train()
    capsys.readouterr()
    # a finished run resumed into a new output dir: nothing left to train, the final test still runs
    again = _build(_argv(data, ckpt, tmp_path / "second", "--resume", str(tmp_path / "first")))
    again.train()
    out = capsys.readouterr().out
    assert f"Resumed from epoch {MAX_EPOCH}" in out
    assert "epoch [" not in out  # no training step ran
    torch.testing.assert_close(again.model.prompt_learner.ctx, first.model.prompt_learner.ctx)


def test_a_trainer_without_build_model_is_a_clear_error(assets, tmp_path):
    """The engine has no default model (Dassl's torchvision SimpleNet is not carried over)."""
    from dassl.engine import TRAINER_REGISTRY, ModelNotDefinedError, TrainerX
    from dassl.utils.errors import UserError

    class NoModel(TrainerX):
        pass

    TRAINER_REGISTRY.register(NoModel)
    try:
        data, ckpt = assets
        argv = _argv(data, ckpt, tmp_path / "run")
        argv[argv.index("CoOpStyle")] = "NoModel"
        with pytest.raises(ModelNotDefinedError, match=r"NoModel does not build a model: override build_model\(\)") as err:
            _build(argv)
        assert isinstance(err.value, UserError) and "register_model" in str(err.value)
    finally:
        TRAINER_REGISTRY._obj_map.pop("NoModel", None)
