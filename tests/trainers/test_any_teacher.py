"""Any teacher: a plain, unprompted CLIP (template-ensemble class vectors) and CLIPs in open_clip's own layout."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch
import torch.nn.functional as F

from trainers.backbone import load_clip
from trainers.student_record import read_student_record
from trainers.teacher import teacher_templates

TINY_OPEN_CLIP = {
    "embed_dim": 96,
    "quick_gelu": False,
    "vision_cfg": {"image_size": 112, "patch_size": 16, "width": 64, "layers": 2, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def save_tiny_open_clip(folder, seed: int = 0) -> torch.nn.Module:
    """A tiny open_clip CLIP (GELU, head width 32: neither is OpenAI's rule) in the hub layout under ``folder``."""
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = CLIP(**TINY_OPEN_CLIP).eval()
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_OPEN_CLIP, "preprocess_cfg": {}}))
    return model


def test_open_clip_layout_is_read_with_its_own_config(tmp_path):
    original = save_tiny_open_clip(tmp_path / "tiny_open_clip")
    loaded = load_clip("ViT-L/14", str(tmp_path / "tiny_open_clip"))
    block = loaded.visual.transformer.resblocks[0]
    assert block.attn.num_heads == 2  # width 64 / head width 32 from the config, not OpenAI's width // 64
    assert isinstance(block.mlp.gelu, torch.nn.GELU)  # not QuickGELU
    image, text = torch.randn(2, 3, 112, 112), open_clip.tokenize(["a photo of a cat", "a dog"])
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(image), original.encode_image(image))
        assert torch.equal(loaded.encode_text(text), original.encode_text(text))


def test_plain_open_clip_teacher_distils_end_to_end(trained_student, tmp_path):
    from tools import predict

    demo, _ = trained_student
    teacher = save_tiny_open_clip(tmp_path / "teacher_open_clip", seed=3)
    base, novel = demo.promptkd(
        "TRAINER.PROMPTKD.TEACHER_KIND", "plain", "TRAINER.PROMPTKD.TEACHER_TEMPLATES", "select",
        "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH", str(tmp_path / "teacher_open_clip"), out="plain_teacher",
    )  # fmt: skip
    assert 0 <= base <= 100 and 0 <= novel <= 100
    run = demo.out / "runs" / "plain_teacher"
    log = (run / "log.txt").read_text()
    assert "Teacher: plain CLIP ViT-L/14 without prompts, class vectors from 8 templates (select)" in log
    record, _ = read_student_record(run)
    assert record["teacher"]["kind"] == "plain" and record["design"]["out_dim"] == 96
    # the class vectors are the template ensemble of the unprompted teacher
    templates = teacher_templates("select", "Demo")
    assert record["teacher"]["templates"] == templates and len(templates) == 8
    with torch.no_grad():
        expected = torch.stack([
            F.normalize(F.normalize(teacher.encode_text(open_clip.tokenize([t.format(name) for t in templates])),
                                    dim=-1).mean(0), dim=-1)
            for name in record["classnames"]
        ])  # fmt: skip
    torch.testing.assert_close(record["class_vectors"], expected, rtol=1e-5, atol=1e-6)

    # re-targeting needs only the plain teacher's CLIP (there is no teacher checkpoint)
    names = tmp_path / "names.txt"
    names.write_text(f"{record['classnames'][1]}\n{record['classnames'][9]}\n")
    retargeted = predict.load_predictor(str(run), torch.device("cpu"),
                                        classnames=predict.read_classnames(str(names)))  # fmt: skip
    full = predict.load_predictor(str(run), torch.device("cpu"))
    x = torch.randn(2, 3, 112, 112)
    torch.testing.assert_close(retargeted.logits(x), full.logits(x)[:, [1, 9]], rtol=1e-4, atol=1e-4)


def test_an_unknown_teacher_kind_is_a_clear_error(trained_student):
    from trainers.teacher import TeacherCheckpointError

    demo, _ = trained_student
    with pytest.raises(TeacherCheckpointError, match="TEACHER_KIND must be one of"):
        demo.promptkd("TRAINER.PROMPTKD.TEACHER_KIND", "huge", out="bad_kind")
