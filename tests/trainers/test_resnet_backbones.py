"""The text-prompt methods on a ResNet CLIP (CoOp's RN50 configs), as the originals run them; the vision-prompt
methods refuse a ResNet with a message that says what to use instead."""

from __future__ import annotations

import pytest
import torch

import train
from datasets.demo import make_demo_dataset
from tests.conftest import REPO_ROOT, USE_CUDA_OPT, run_tiny
from tools.make_tiny_clip import make_tiny_clip, save_tiny_clip
from trainers.prompting import VisionPromptBackboneError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def rn50(tmp_path_factory):
    root = tmp_path_factory.mktemp("rn50")
    make_demo_dataset(root / "data", size=32)
    ckpt = save_tiny_clip(make_tiny_clip("rn50", image_size=32, seed=3), root / "RN50.pt")
    return root / "data", ckpt


@pytest.mark.parametrize(
    ("trainer", "config", "model_name"),
    [
        ("CoOp", "CoOp/rn50_ep50", "prompt_learner"),
        ("CoOp", "CoOp/rn50_ctxv1", "prompt_learner"),
        ("CoCoOp", "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1", "prompt_learner"),
        ("KgCoOp", "KgCoOp/rn50_ep100_ctxv1", "prompt_learner"),
    ],
)
def test_text_prompt_methods_train_and_evaluate_on_a_resnet(rn50, tmp_path, trainer, config, model_name):
    train_dir = tmp_path / "train"
    trained = run_tiny(rn50, trainer, config, train_dir, "MODEL.BACKBONE.NAME", "RN50",
                       "DATALOADER.TRAIN_X.BATCH_SIZE", "4")  # fmt: skip
    assert any(type(m).__name__ == "ModifiedResNet" for m in trained.model.modules())
    assert (train_dir / model_name / "model.pth.tar-1").is_file()
    evaluated = run_tiny(rn50, trainer, config, tmp_path / "eval", "MODEL.BACKBONE.NAME", "RN50",
                         "DATASET.SUBSAMPLE_CLASSES", "new",
                         flags=("--eval-only", "--model-dir", str(train_dir), "--load-epoch", "1"))  # fmt: skip
    assert (tmp_path / "eval" / "results.json").is_file()
    images = torch.randn(2, 3, 32, 32, device=evaluated.device)
    assert evaluated.model_inference(images).shape == (2, 6)  # the 6 novel classes
    for key, value in trained.model_state_dict(
        model_name
    ).items():  # the trained context, rebuilt for new classes
        torch.testing.assert_close(evaluated.model_state_dict(model_name)[key], value, rtol=0, atol=0)


def test_zero_shot_clip_on_a_resnet(rn50, tmp_path):
    data, ckpt = rn50
    argv = ["--root", str(data), "--trainer", "ZeroshotCLIP", "--dataset-config-file", str(REPO_ROOT / "configs/datasets/demo.yaml"),
            "--config-file", str(REPO_ROOT / "configs/trainers/CoOp/rn50.yaml"), "--output-dir", str(tmp_path), "--eval-only",
            "MODEL.BACKBONE.PATH", str(ckpt), "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "USE_CUDA", USE_CUDA_OPT]  # fmt: skip
    trainer = train.run(train.build_parser().parse_args(argv))
    assert (tmp_path / "results.json").is_file()
    assert type(trainer.clip_model.visual).__name__ == "ModifiedResNet"


@pytest.mark.parametrize(
    ("trainer", "config", "depth_keys"),
    [
        ("MaPLe", "MaPLe/vit_b16_c2_ep5_batch4_2ctx", ["MAPLE.PROMPT_DEPTH"]),
        ("IVLP", "IVLP/vit_b16_c2_ep5_batch4_2+2ctx", ["IVLP.PROMPT_DEPTH_TEXT", "IVLP.PROMPT_DEPTH_VISION"]),
        ("VPT", "VPT/vit_b16_c2_ep5_batch4_4", ["VPT.PROMPT_DEPTH_VISION"]),
        ("PromptSRC", "PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx", ["PROMPTSRC.PROMPT_DEPTH_TEXT", "PROMPTSRC.PROMPT_DEPTH_VISION"]),
    ],
)  # fmt: skip
def test_vision_prompt_methods_refuse_a_resnet_with_the_fix(rn50, tmp_path, trainer, config, depth_keys):
    depths = [word for key in depth_keys for word in (f"TRAINER.{key}", "2")]  # within the tiny text tower
    message = r"ModifiedResNet.*Use a ViT backbone.*CoOp, CoCoOp, KgCoOp"
    with pytest.raises(VisionPromptBackboneError, match=message):
        run_tiny(rn50, trainer, config, tmp_path, "MODEL.BACKBONE.NAME", "RN50", *depths, flags=("--no-train",))


def test_tiny_rn50_has_openai_resnet_keys_and_is_seeded():
    from trainers.backbone import clip_model_info

    sd = make_tiny_clip("rn50", image_size=64, seed=7)
    info = clip_model_info(sd)
    assert (info["arch"], info["image_resolution"], info["vision_layers"]) == ("resnet", 64, (1, 1, 1, 1))
    assert "visual.attnpool.c_proj.weight" in sd and sd["visual.conv1.weight"].dtype == torch.float16
    again = make_tiny_clip("rn50", image_size=64, seed=7)
    assert all(torch.equal(sd[k], again[k]) for k in sd)
    with pytest.raises(ValueError, match="multiple of the rn50 patch size 32"):
        make_tiny_clip("rn50", image_size=48)
