"""DescribableTextures (DTD): ``dtd/images/<texture>/<texture>_<id>.jpg`` + ``split_zhou_DescribableTextures.json``.

47 classes (24 base / 23 novel). Class name: the texture folder name (``banded``); the split file already
holds it.
"""

from dassl.data.datasets import DATASET_REGISTRY

from .common import BenchmarkDataset


@DATASET_REGISTRY.register()
class DescribableTextures(BenchmarkDataset):
    dataset_dir = "dtd"
    image_dir_name = "images"
    split_file = "split_zhou_DescribableTextures.json"
    # how upstream's read_and_split_data draws a split without the json (50/20/30 per class)
    split_generation = {}
