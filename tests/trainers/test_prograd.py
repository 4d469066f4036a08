"""ProGrad on the demo data: the prompt-aligned gradient never points against the zero-shot knowledge."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import make_tiny_demo, run_tiny
from trainers.prograd import prograd_losses, project_conflicting

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_tiny_demo(tmp_path_factory.mktemp("prograd"), layers=2, seed=13)


def test_a_conflicting_gradient_loses_its_component_along_the_general_one():
    general = torch.tensor([1.0, 0.0, 0.0])
    grad = torch.tensor([-2.0, 1.0, 3.0])
    projected = project_conflicting(grad, general, 1.0)
    torch.testing.assert_close(projected, torch.tensor([0.0, 1.0, 3.0]))
    torch.testing.assert_close(project_conflicting(grad, general, 0.5), torch.tensor([-1.0, 1.0, 3.0]))
    aligned = torch.tensor([2.0, 1.0, 3.0])
    assert torch.equal(project_conflicting(aligned, general, 1.0), aligned)  # no conflict: unchanged


def test_prograd_trains_on_the_demo_data(assets, tmp_path):
    trainer = run_tiny(
        assets, "ProGrad", "ProGrad/vit_b16_ep50_ctxv1", tmp_path, "DATALOADER.TRAIN_X.BATCH_SIZE", "8"
    )
    assert trainer.cfg.LOSS.NAME == "prograd"
    assert (tmp_path / "prompt_learner" / "model.pth.tar-1").is_file()
    assert (tmp_path / "results.json").is_file()


def test_the_applied_gradient_does_not_conflict_with_the_kl_gradient(assets, tmp_path, monkeypatch):
    trainer = run_tiny(assets, "ProGrad", "ProGrad/vit_b16_ep50_ctxv1", tmp_path, "TRAINER.COOP.CTX_INIT", "",
                       "TRAINER.COOP.N_CTX", "4", flags=("--no-train",))  # fmt: skip
    monkeypatch.setattr(
        trainer.precision, "step", lambda optimizers: None
    )  # keep the parameters where they are
    batch = next(iter(trainer.train_loader_x))
    trainer.batch_idx, trainer.num_batches = 0, 10**6
    trainer.set_model_mode("train")
    for _ in range(3):  # a few batches with another draw of context vectors each time
        with torch.no_grad():
            trainer.model.prompt_learner.ctx.normal_(0, 0.5)
        trainer.forward_backward(batch)
        applied = trainer.model.prompt_learner.ctx.grad.clone()
        image, label = trainer.parse_batch_train(batch)
        _, loss_kl = prograd_losses(trainer.model(image), trainer.zero_shot_logits(image), label, 1.0)
        (kl_grad,) = torch.autograd.grad(loss_kl, [trainer.model.prompt_learner.ctx])
        assert torch.dot(applied.flatten(), kl_grad.flatten()) >= -1e-6 * applied.norm() * kl_grad.norm()


def test_an_unknown_loss_name_is_refused(assets, tmp_path):
    with pytest.raises(ValueError, match="LOSS.NAME must be 'prograd'"):
        run_tiny(
            assets,
            "ProGrad",
            "ProGrad/vit_b16_ep50_ctxv1",
            tmp_path,
            "LOSS.NAME",
            "kd",
            flags=("--no-train",),
        )
