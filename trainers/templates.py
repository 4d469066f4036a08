"""Prompt templates: per-dataset hand-crafted prompts and the OpenAI ImageNet ensembles.

The 80 OpenAI ImageNet templates come from open_clip (one source of truth); the 60-template list that
PromptSRC averages is derived from it: indices [39, 0, 1, ..., 38, 40, ..., 59] ("a photo of a {}." first).
"""

from __future__ import annotations

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES as _OPENAI_TEMPLATE_FNS

# Zero-shot CLIP / CoOp family: one template per DATASET.NAME
CUSTOM_TEMPLATES: dict[str, str] = {
    "OxfordPets": "a photo of a {}, a type of pet.",
    "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.",
    "StanfordCars": "a photo of a {}.",
    "Food101": "a photo of {}, a type of food.",
    "SUN397": "a photo of a {}.",
    "Caltech101": "a photo of a {}.",
    "UCF101": "a photo of a person doing {}.",
    "ImageNet": "a photo of a {}.",
    "ImageNetSketch": "a photo of a {}.",
    "ImageNetV2": "a photo of a {}.",
    "ImageNetA": "a photo of a {}.",
    "ImageNetR": "a photo of a {}.",
}

# Used when a dataset has no entry above (e.g. a user's own dataset).
DEFAULT_TEMPLATE = "a photo of a {}."

# The 80 OpenAI ImageNet templates as format strings (CoOp repo's IMAGENET_TEMPLATES).
IMAGENET_TEMPLATES_80: list[str] = [fn("{}") for fn in _OPENAI_TEMPLATE_FNS]

# PromptSRC's 60-template list: the first 60 of the 80 with "a photo of a {}." (index 39) moved to the front.
IMAGENET_TEMPLATES_60: list[str] = [IMAGENET_TEMPLATES_80[39]] + IMAGENET_TEMPLATES_80[:39] + IMAGENET_TEMPLATES_80[40:60]

# ZeroshotCLIP2's ensemble (7 templates; the dataset's CUSTOM template is added for non-ImageNet datasets).
IMAGENET_TEMPLATES_SELECT: list[str] = [
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]


def custom_template(dataset_name: str) -> str:
    """The hand-crafted template of a dataset (``DEFAULT_TEMPLATE`` for datasets not in the table)."""
    return CUSTOM_TEMPLATES.get(dataset_name, DEFAULT_TEMPLATE)
