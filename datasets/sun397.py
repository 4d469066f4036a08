"""SUN397: ``sun397/SUN397/<letter>/<category>[/<sub-category>]/sun_<id>.jpg`` + ``split_zhou_SUN397.json``.

397 classes (199 base / 198 novel). Class name: the path components after the letter folder, reversed and joined
with spaces (``a/abbey`` -> ``abbey``, ``a/apartment_building/outdoor`` -> ``outdoor apartment_building``); the
split file already holds it.
"""

from dassl.data.datasets import DATASET_REGISTRY

from .common import BenchmarkDataset


@DATASET_REGISTRY.register()
class SUN397(BenchmarkDataset):
    dataset_dir = "sun397"
    image_dir_name = "SUN397"
    split_file = "split_zhou_SUN397.json"
