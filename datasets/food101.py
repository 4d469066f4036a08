"""Food101: ``food-101/images/<class_folder>/<n>.jpg`` + ``split_zhou_Food101.json``.

101 classes (51 base / 50 novel). Class name: the folder name (``apple_pie``; ``_`` becomes a space when the
prompt is built); the split file already holds it.
"""

from dassl.data.datasets import DATASET_REGISTRY

from .common import BenchmarkDataset


@DATASET_REGISTRY.register()
class Food101(BenchmarkDataset):
    dataset_dir = "food-101"
    image_dir_name = "images"
    split_file = "split_zhou_Food101.json"
    # how upstream's read_and_split_data draws a split without the json (50/20/30 per class)
    split_generation = {}
