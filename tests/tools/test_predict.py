"""tools/predict.py: a saved student (or any trained run) classifies images exactly as the evaluator does."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import train
from tools import predict
from tools.demo import CONFIGS, student_opts


def _eval_only(demo, run, out: str):
    """The evaluator on the saved student (train.py --eval-only), returning the trainer."""
    argv = demo.argv(
        "PromptKD", "PromptKD/vit_b16_c2_ep20_batch8_4+4ctx.yaml", out, *student_opts(demo.assets, demo.epochs),
        "DATASET.NUM_SHOTS", "0", "TRAINER.MODAL", "base2novel", flags=("--eval-only", "--model-dir", str(run)),
    )  # fmt: skip
    assert CONFIGS.is_dir()
    return train.run(train.build_parser().parse_args(argv))


def test_top1_equals_the_evaluators_predictions(trained_student, tmp_path, capsys):
    demo, run = trained_student
    trainer = _eval_only(demo, run, "eval_for_predict")
    test_items = trainer.test_loader.dataset.data_source  # the novel-class test images, in evaluation order
    evaluator_pred = list(trainer.evaluator._y_pred)
    assert len(evaluator_pred) == len(test_items) == 48
    n_base = trainer.partition.num_base

    out = tmp_path / "pred.json"
    paths = [item.impath for item in test_items]
    assert predict.main([str(run), *paths, "--topk", "12", "--format", "json", "--batch-size", "7",
                         "--output", str(out)]) == 0  # fmt: skip
    results = json.loads(out.read_text())
    assert [r["image"] for r in results] == paths
    for item, expected in zip(results, evaluator_pred):
        probs = {p["label"]: p["probability"] for p in item["predictions"]}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        novel = max(range(n_base, 12), key=lambda label: probs[label])  # the evaluator's novel-class slice
        assert novel - n_base == expected
    capsys.readouterr()


def test_table_csv_globs_and_folders(trained_student, capsys):
    demo, run = trained_student
    images = demo.assets.data / "demo" / "images"
    assert predict.main([str(run), str(images / "blue_circle"), "--topk", "2"]) == 0
    table = capsys.readouterr().out
    assert "top-1" in table and "top-2" in table and "%)" in table and "Loaded CLIP" not in table
    assert predict.main([str(run), str(images / "*" / "0001.png"), "--format", "csv", "--topk", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "image,rank,class,label,probability" and len(lines) >= 2
    with pytest.raises(predict.PredictError, match="No image matches"):
        predict.collect_images([str(images / "nothing*.png")])


def test_classnames_retarget_with_the_teacher_and_say_when_it_is_missing(trained_student, tmp_path, capsys):
    demo, run = trained_student
    record_names = json.loads(json.dumps(torch.load(run / "VLPromptLearner" / "model-best.pth.tar",
                                                    weights_only=True)["student"]["classnames"]))  # fmt: skip
    chosen = [record_names[7], record_names[2]]
    names_file = tmp_path / "names.txt"
    names_file.write_text("# two of the classes\n" + "\n".join(chosen) + "\n")
    image = str(next((demo.assets.data / "demo" / "images").rglob("*.png")))
    device = torch.device("cpu")
    full = predict.load_predictor(str(run), device)
    retargeted = predict.load_predictor(str(run), device, classnames=predict.read_classnames(str(names_file)))
    assert retargeted.classnames == chosen
    from PIL import Image

    x = full.transform(Image.open(image).convert("RGB"))[None]
    # the teacher encodes each class on its own: the re-targeted logits are the full ones' columns
    torch.testing.assert_close(retargeted.logits(x), full.logits(x)[:, [7, 2]], rtol=1e-4, atol=1e-4)

    teacher_dir = demo.out / "runs" / "PromptSRC_teacher"
    moved = tmp_path / "teacher_away"
    shutil.move(teacher_dir, moved)
    try:
        assert predict.main([str(run), image, "--classnames", str(names_file)]) == 2
    finally:
        shutil.move(moved, teacher_dir)
    err = capsys.readouterr().err
    assert "needs the student's teacher" in err and "--teacher-ckpt" in err


def test_any_trained_method_predicts_from_its_run_folder(trained_student, capsys):
    demo, _ = trained_student
    teacher_run = demo.out / "runs" / "PromptSRC_teacher" / "train_base"
    image = next((demo.assets.data / "demo" / "images").rglob("*.png"))
    assert predict.main([str(teacher_run), str(image), "--format", "json", "--topk", "3"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert len(item["predictions"]) == 3 and item["predictions"][0]["label"] < 6  # trained on the 6 base classes
