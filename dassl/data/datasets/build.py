"""The dataset registry: dataset classes register by name and are built from ``cfg.DATASET.NAME``."""

from __future__ import annotations

from dassl.utils import Registry, check_availability

DATASET_REGISTRY = Registry("DATASET")


def build_dataset(cfg):
    """Instantiate the dataset class registered under ``cfg.DATASET.NAME``."""
    avai_datasets = DATASET_REGISTRY.registered_names()
    if not avai_datasets:
        raise RuntimeError(
            "No dataset is registered. Import the dataset package first (e.g. `import datasets`), as train.py does."
        )
    check_availability(cfg.DATASET.NAME, avai_datasets, "dataset", "DATASET.NAME in --dataset-config-file")
    if cfg.VERBOSE:
        print(f"Loading dataset: {cfg.DATASET.NAME}")
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)
