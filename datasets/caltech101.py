"""Caltech101 (CoOp layout): ``caltech-101/101_ObjectCategories/<Folder>/*.jpg`` + ``split_zhou_Caltech101.json``.

Class names follow the split file (``BACKGROUND_Google`` and ``Faces_easy`` are not in it; ``Faces`` is "face",
``Leopards`` "leopard", ``Motorbikes`` "motorbike", ``airplanes`` "airplane").
"""

from __future__ import annotations

import os

from dassl.data.datasets import DATASET_REGISTRY, DatasetBase

from .common import fewshot_split, read_split, subsample_classes


@DATASET_REGISTRY.register()
class Caltech101(DatasetBase):
    dataset_dir = "caltech-101"

    def __init__(self, cfg) -> None:
        root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))
        self.dataset_dir = os.path.join(root, self.dataset_dir)
        self.image_dir = os.path.join(self.dataset_dir, "101_ObjectCategories")
        self.split_path = os.path.join(self.dataset_dir, "split_zhou_Caltech101.json")
        self.split_fewshot_dir = os.path.join(self.dataset_dir, "split_fewshot")

        train, val, test = read_split(self.split_path, self.image_dir)

        num_shots = cfg.DATASET.NUM_SHOTS
        if num_shots >= 1:
            train, val = fewshot_split(
                self, train, val, num_shots, cfg.SEED, self.split_fewshot_dir, self.image_dir
            )

        train, val, test = subsample_classes(train, val, test, subsample=cfg.DATASET.SUBSAMPLE_CLASSES)
        super().__init__(train_x=train, val=val, test=test)
