"""EuroSAT: ``eurosat/2750/<Folder>/<Folder>_<n>.jpg`` + ``split_zhou_EuroSAT.json``.

10 classes (5 base / 5 novel). Class names are descriptive renames of the folders (the split file already holds
them): AnnualCrop -> "Annual Crop Land", Forest -> "Forest", HerbaceousVegetation -> "Herbaceous Vegetation Land",
Highway -> "Highway or Road", Industrial -> "Industrial Buildings", Pasture -> "Pasture Land",
PermanentCrop -> "Permanent Crop Land", Residential -> "Residential Buildings", River -> "River",
SeaLake -> "Sea or Lake".
"""

from dassl.data.datasets import DATASET_REGISTRY

from .common import BenchmarkDataset


@DATASET_REGISTRY.register()
class EuroSAT(BenchmarkDataset):
    dataset_dir = "eurosat"
    image_dir_name = "2750"
    split_file = "split_zhou_EuroSAT.json"
    # how upstream's read_and_split_data draws a split without the json (50/20/30 per class)
    split_generation = {
        "new_cnames": {
            "AnnualCrop": "Annual Crop Land", "Forest": "Forest", "HerbaceousVegetation": "Herbaceous Vegetation Land",
            "Highway": "Highway or Road", "Industrial": "Industrial Buildings", "Pasture": "Pasture Land",
            "PermanentCrop": "Permanent Crop Land", "Residential": "Residential Buildings", "River": "River",
            "SeaLake": "Sea or Lake",
        },
    }  # fmt: skip
