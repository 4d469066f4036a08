from .base_dataset import DatasetBase, Datum
from .build import DATASET_REGISTRY, build_dataset

__all__ = ["DATASET_REGISTRY", "build_dataset", "Datum", "DatasetBase"]
