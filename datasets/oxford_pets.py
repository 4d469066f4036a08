"""OxfordPets: ``oxford_pets/images/<Breed>_<n>.jpg`` (+ ``annotations/``) + ``split_zhou_OxfordPets.json``.

37 classes (19 base / 18 novel). Class name: the breed taken from the file name and lower-cased
(``Abyssinian_100.jpg`` -> ``abyssinian``, ``american_bulldog_100.jpg`` -> ``american_bulldog``); the split
file already holds it.
"""

from dassl.data.datasets import DATASET_REGISTRY

from .common import BenchmarkDataset


@DATASET_REGISTRY.register()
class OxfordPets(BenchmarkDataset):
    dataset_dir = "oxford_pets"
    image_dir_name = "images"
    split_file = "split_zhou_OxfordPets.json"
