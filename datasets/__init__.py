"""Dataset classes, registered into ``dassl.data.datasets.DATASET_REGISTRY`` on import."""

from . import caltech101, demo  # noqa: F401
