"""OxfordFlowers: ``oxford_flowers/jpg/image_<nnnnn>.jpg`` (+ ``imagelabels.mat``, ``cat_to_name.json``) +
``split_zhou_OxfordFlowers.json``.

102 classes (51 base / 51 novel). Class name: the entry of ``cat_to_name.json`` for the flower's category
(``pink primrose``); the split file already holds it.
"""

from dassl.data.datasets import DATASET_REGISTRY

from .common import BenchmarkDataset


@DATASET_REGISTRY.register()
class OxfordFlowers(BenchmarkDataset):
    dataset_dir = "oxford_flowers"
    image_dir_name = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"
