"""Caltech101: ``caltech-101/101_ObjectCategories/<Folder>/*.jpg`` + ``split_zhou_Caltech101.json``.

100 classes (50 base / 50 novel). Class names come from the split file: ``BACKGROUND_Google`` and ``Faces_easy``
are not in it, and ``Faces``, ``Leopards``, ``Motorbikes``, ``airplanes`` are named face, leopard, motorbike,
airplane.
"""

from dassl.data.datasets import DATASET_REGISTRY

from .common import BenchmarkDataset


@DATASET_REGISTRY.register()
class Caltech101(BenchmarkDataset):
    dataset_dir = "caltech-101"
    image_dir_name = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
    # how upstream's read_and_split_data draws a split without the json (50/20/30 per class)
    split_generation = {
        "ignored": ("BACKGROUND_Google", "Faces_easy"),
        "new_cnames": {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"},
    }
