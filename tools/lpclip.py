"""Linear-probe CLIP (CoOp's ``lpclip/``): logistic regression on frozen CLIP image features of K shots per class.

    python tools/lpclip.py --root $DATA --dataset-config-file configs/datasets/caltech101.yaml \
        --config-file configs/trainers/CoOp/rn50_val.yaml --seed 1 --output-dir output/lpclip/caltech101/16shots/seed1 \
        DATASET.NUM_SHOTS 16

Features: the CLIP image encoder on the test-time transform (resize, centre crop, normalise) of the few-shot train
split, the json val split and the test split, as CoOp's feat_extractor does. The inverse regularisation C is
searched on the val split as CoOp's linear_probe does (a coarse grid 1e-6..1e6, then bisection in log space
around the best value); the chosen C is refitted and the test accuracy printed (``* accuracy: X%``) and written
to ``<output-dir>/results.json``. The few-shot sample is the one every method draws for that seed.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

COARSE_C = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)  # CoOp's initial search values
BISECTION_STEPS = 8


def extract_features(cfg, clip_model, items, device) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, d) float32, labels (n,)) of ``items`` through the test transform."""
    from dassl.data import build_data_loader
    from dassl.data.transforms.transforms import build_transform

    loader = build_data_loader(cfg, data_source=items, batch_size=cfg.DATALOADER.TEST.BATCH_SIZE,
                               tfm=build_transform(cfg, is_train=False), is_train=False)  # fmt: skip
    features, labels = [], []
    with torch.no_grad():
        for batch in loader:
            image = batch["img"].to(device)
            features.append(clip_model.encode_image(image).float().cpu())
            labels.append(batch["label"])
    return torch.cat(features).numpy(), torch.cat(labels).numpy()


def _accuracy(C: float, train, val) -> float:
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(C=C, max_iter=1000, random_state=0)
    classifier.fit(*train)
    return float((classifier.predict(val[0]) == val[1]).mean())


def search_c(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """(best C, its val accuracy): the coarse grid, then bisection between the best value's neighbours."""
    scores = {c: _accuracy(c, train, val) for c in COARSE_C}
    best = max(COARSE_C, key=lambda c: (scores[c], -abs(math.log10(c))))  # ties: the milder regularisation
    index = COARSE_C.index(best)
    low = math.log10(COARSE_C[min(index + 1, len(COARSE_C) - 1)])
    high = math.log10(COARSE_C[max(index - 1, 0)])
    for _ in range(BISECTION_STEPS):
        left, right = (2 * low + high) / 3, (low + 2 * high) / 3
        score_left, score_right = (_accuracy(10**x, train, val) for x in (left, right))
        for x, score in ((left, score_left), (right, score_right)):
            if score > scores[best]:
                best = 10**x
                scores[best] = score
        if score_left >= score_right:
            high = right
        else:
            low = left
    return best, scores[best]


def main(argv: list[str] | None = None) -> int:
    import train
    from dassl.data.datasets import build_dataset
    from dassl.utils import set_random_seed
    from promptkd import datasets  # noqa: F401  (registers the datasets)
    from trainers.backbone import load_clip

    args = train.build_parser().parse_args(argv)
    args.trainer = args.trainer or "ZeroshotCLIP"  # the standard protocol; nothing is trained by a trainer
    cfg = train.setup_cfg(args)
    if cfg.SEED >= 0:
        set_random_seed(cfg.SEED)
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.USE_CUDA else "cpu")
    dataset = build_dataset(cfg)
    if not dataset.val:
        print(f"Error: {cfg.DATASET.NAME} has no val split to choose C on (DATASET.VAL_SOURCE test uses the test split)",
              file=sys.stderr)  # fmt: skip
        return 2
    clip_model = load_clip(cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.PATH, device=device)
    splits = {name: extract_features(cfg, clip_model, getattr(dataset, name), device) for name in ("train_x", "val", "test")}
    best_c, val_accuracy = search_c(splits["train_x"], splits["val"])
    test_accuracy = _accuracy(best_c, splits["train_x"], splits["test"])
    print(f"C = {best_c:.4g} (val accuracy {100 * val_accuracy:.1f}%)")
    print(f"=> result\n* total: {len(splits['test'][1])}\n* accuracy: {100 * test_accuracy:.1f}%")
    out = Path(cfg.OUTPUT_DIR)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({
        "method": "lpclip", "dataset": cfg.DATASET.NAME, "num_shots": cfg.DATASET.NUM_SHOTS, "seed": cfg.SEED,
        "C": best_c, "val_accuracy": 100 * val_accuracy, "test_accuracy": 100 * test_accuracy,
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
