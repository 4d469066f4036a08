"""StanfordCars: ``stanford_cars/{cars_train,cars_test}/<n>.jpg`` (+ ``devkit/``) + ``split_zhou_StanfordCars.json``.

196 classes (98 base / 98 novel). The split paths start at the dataset folder (``cars_train/00001.jpg``), not at
an image folder. Class name: "year make model", the year moved from the end of the devkit name to the front
(``AM General Hummer SUV 2000`` -> ``2000 AM General Hummer SUV``); the split file already holds it.
"""

from dassl.data.datasets import DATASET_REGISTRY

from .common import BenchmarkDataset


@DATASET_REGISTRY.register()
class StanfordCars(BenchmarkDataset):
    dataset_dir = "stanford_cars"
    image_dir_name = ""
    split_file = "split_zhou_StanfordCars.json"
    paths_relative_to_dataset_dir = True
