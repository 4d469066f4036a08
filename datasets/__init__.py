"""Dataset classes, registered into ``dassl.data.datasets.DATASET_REGISTRY`` on import."""

from . import (  # noqa: F401
    caltech101,
    demo,
    dtd,
    eurosat,
    fgvc_aircraft,
    food101,
    imagenet,
    imagenet_variants,
    miniworld,
    oxford_flowers,
    oxford_pets,
    stanford_cars,
    sun397,
    ucf101,
)
