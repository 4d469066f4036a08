"""``build_transform``: the train/test image pipelines named by ``INPUT.TRANSFORMS`` (Dassl names and order).

Prompt-learning configs use ``random_resized_crop``, ``random_flip`` and ``normalize`` with bicubic resizing and
CLIP's mean/std; test images are resized on the shorter side and centre-cropped.
"""

from __future__ import annotations

import random

import torch
from torchvision.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    GaussianBlur,
    InterpolationMode,
    Normalize,
    RandomApply,
    RandomCrop,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
)

AVAI_CHOICES = [
    "random_flip",
    "random_resized_crop",
    "normalize",
    "instance_norm",
    "random_crop",
    "random_translation",
    "center_crop",  # this has become a default operation during testing
    "cutout",
    "colorjitter",
    "randomgrayscale",
    "gaussian_noise",
    "gaussian_blur",
]

# Dassl also offers AutoAugment/RandAugment policies; no prompt-learning method uses them.
UNSUPPORTED_CHOICES = [
    "imagenet_policy",
    "cifar10_policy",
    "svhn_policy",
    "randaugment",
    "randaugment_fixmatch",
    "randaugment2",
]

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


class Random2DTranslation:
    """With probability p, enlarge the image by 1/8 and crop a random (height, width) patch; else resize."""

    def __init__(self, height: int, width: int, p: float = 0.5, interpolation=InterpolationMode.BILINEAR) -> None:
        self.height = height
        self.width = width
        self.p = p
        self.interpolation = interpolation

    def __call__(self, img):
        if random.uniform(0, 1) > self.p:
            return Resize((self.height, self.width), interpolation=self.interpolation)(img)
        new_width = int(round(self.width * 1.125))
        new_height = int(round(self.height * 1.125))
        resized_img = Resize((new_height, new_width), interpolation=self.interpolation)(img)
        x_maxrange = new_width - self.width
        y_maxrange = new_height - self.height
        x1 = int(round(random.uniform(0, x_maxrange)))
        y1 = int(round(random.uniform(0, y_maxrange)))
        return resized_img.crop((x1, y1, x1 + self.width, y1 + self.height))


class InstanceNormalization:
    """Normalise each channel of one image tensor to zero mean and unit variance."""

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        C, H, W = img.shape
        img_re = img.reshape(C, H * W)
        mean = img_re.mean(1).view(C, 1, 1)
        std = img_re.std(1).view(C, 1, 1)
        return (img - mean) / (std + self.eps)


class Cutout:
    """Zero out ``n_holes`` random square patches of side ``length`` (tensor input)."""

    def __init__(self, n_holes: int = 1, length: int = 16) -> None:
        self.n_holes = n_holes
        self.length = length

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.size(1), img.size(2)
        mask = torch.ones((h, w), dtype=img.dtype)
        for _ in range(self.n_holes):
            y = random.randint(0, h - 1)
            x = random.randint(0, w - 1)
            y1, y2 = max(0, y - self.length // 2), min(h, y + self.length // 2)
            x1, x2 = max(0, x - self.length // 2), min(w, x + self.length // 2)
            mask[y1:y2, x1:x2] = 0.0
        return img * mask.expand_as(img)


class GaussianNoise:
    """Add N(mean, std) noise with probability p (tensor input)."""

    def __init__(self, mean: float = 0.0, std: float = 0.15, p: float = 0.5) -> None:
        self.mean = mean
        self.std = std
        self.p = p

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if random.uniform(0, 1) > self.p:
            return img
        return img + torch.randn(img.size()) * self.std + self.mean


def build_transform(cfg, is_train: bool = True, choices: list[str] | None = None):
    """Build the train or test transform from ``cfg.INPUT`` (``choices`` overrides ``INPUT.TRANSFORMS``)."""
    if cfg.INPUT.NO_TRANSFORM:
        print("Note: no transform is applied!")
        return None

    if choices is None:
        choices = cfg.INPUT.TRANSFORMS

    for choice in choices:
        if choice in UNSUPPORTED_CHOICES:
            raise ValueError(
                f"Transform '{choice}' (INPUT.TRANSFORMS) is a Dassl augmentation policy this toolkit does not ship. "
                f"Supported: {AVAI_CHOICES}. Pass a custom transform to DataManager(custom_tfm_train=...) instead."
            )
        if choice not in AVAI_CHOICES:
            raise ValueError(f"Unknown transform '{choice}' in INPUT.TRANSFORMS; supported: {AVAI_CHOICES}")
    if cfg.INPUT.INTERPOLATION not in INTERPOLATION_MODES:
        raise ValueError(
            f"INPUT.INTERPOLATION must be one of {list(INTERPOLATION_MODES)}, got '{cfg.INPUT.INTERPOLATION}'"
        )

    target_size = f"{cfg.INPUT.SIZE[0]}x{cfg.INPUT.SIZE[1]}"
    normalize = Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)

    if is_train:
        return _build_transform_train(cfg, choices, target_size, normalize)
    return _build_transform_test(cfg, choices, target_size, normalize)


def _build_transform_train(cfg, choices, target_size, normalize):
    print("Building transform_train")
    tfm_train = []

    interp_mode = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    input_size = tuple(cfg.INPUT.SIZE)

    # Make sure the image size matches the target size
    if "random_crop" not in choices and "random_resized_crop" not in choices:
        print(f"+ resize to {target_size}")
        tfm_train += [Resize(input_size, interpolation=interp_mode)]

    if "random_translation" in choices:
        print("+ random translation")
        tfm_train += [Random2DTranslation(input_size[0], input_size[1])]

    if "random_crop" in choices:
        crop_padding = cfg.INPUT.CROP_PADDING
        print(f"+ random crop (padding = {crop_padding})")
        tfm_train += [RandomCrop(input_size, padding=crop_padding)]

    if "random_resized_crop" in choices:
        s_ = tuple(cfg.INPUT.RRCROP_SCALE)
        print(f"+ random resized crop (size={input_size}, scale={s_})")
        tfm_train += [RandomResizedCrop(input_size, scale=s_, interpolation=interp_mode)]

    if "center_crop" in choices:
        print(f"+ {target_size} center crop")
        tfm_train += [CenterCrop(input_size)]

    if "random_flip" in choices:
        print("+ random flip")
        tfm_train += [RandomHorizontalFlip()]

    if "colorjitter" in choices:
        b_, c_ = cfg.INPUT.COLORJITTER_B, cfg.INPUT.COLORJITTER_C
        s_, h_ = cfg.INPUT.COLORJITTER_S, cfg.INPUT.COLORJITTER_H
        print(f"+ color jitter (brightness={b_}, contrast={c_}, saturation={s_}, hue={h_})")
        tfm_train += [ColorJitter(brightness=b_, contrast=c_, saturation=s_, hue=h_)]

    if "randomgrayscale" in choices:
        print("+ random gray scale")
        tfm_train += [RandomGrayscale(p=cfg.INPUT.RGS_P)]

    if "gaussian_blur" in choices:
        gb_k, gb_p = cfg.INPUT.GB_K, cfg.INPUT.GB_P
        print(f"+ gaussian blur (kernel={gb_k}, p={gb_p})")
        tfm_train += [RandomApply([GaussianBlur(gb_k)], p=gb_p)]

    print("+ to torch tensor of range [0, 1]")
    tfm_train += [ToTensor()]

    if "cutout" in choices:
        cutout_n, cutout_len = cfg.INPUT.CUTOUT_N, cfg.INPUT.CUTOUT_LEN
        print(f"+ cutout (n_holes={cutout_n}, length={cutout_len})")
        tfm_train += [Cutout(cutout_n, cutout_len)]

    if "normalize" in choices:
        print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
        tfm_train += [normalize]

    if "gaussian_noise" in choices:
        print(f"+ gaussian noise (mean={cfg.INPUT.GN_MEAN}, std={cfg.INPUT.GN_STD})")
        tfm_train += [GaussianNoise(cfg.INPUT.GN_MEAN, cfg.INPUT.GN_STD)]

    if "instance_norm" in choices:
        print("+ instance normalization")
        tfm_train += [InstanceNormalization()]

    return Compose(tfm_train)


def _build_transform_test(cfg, choices, target_size, normalize):
    print("Building transform_test")
    tfm_test = []

    interp_mode = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
    input_size = tuple(cfg.INPUT.SIZE)

    print(f"+ resize the smaller edge to {max(input_size)}")
    tfm_test += [Resize(max(input_size), interpolation=interp_mode)]

    print(f"+ {target_size} center crop")
    tfm_test += [CenterCrop(input_size)]

    print("+ to torch tensor of range [0, 1]")
    tfm_test += [ToTensor()]

    if "normalize" in choices:
        print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
        tfm_test += [normalize]

    if "instance_norm" in choices:
        print("+ instance normalization")
        tfm_test += [InstanceNormalization()]

    return Compose(tfm_test)


__all__ = ["build_transform", "INTERPOLATION_MODES", "AVAI_CHOICES"]
