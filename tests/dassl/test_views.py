"""Views as data (dassl/data/views.py): a view is a deterministic function of (bank seed, image, view), replayable
from its recorded parameters, drawn from the same distributions as the ordinary transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import SequentialSampler
from torchvision.transforms import RandomResizedCrop

from dassl.config import get_cfg_default
from dassl.data.transforms import build_transform
from dassl.data.views import ViewConfigError, ViewSampler, ViewTransform, view_generator, view_schedule
from trainers.config import extend_cfg

EVERYTHING = ["random_translation", "random_crop", "random_resized_crop", "center_crop", "random_flip", "colorjitter",
              "randomgrayscale", "gaussian_blur", "cutout", "normalize", "gaussian_noise", "instance_norm"]  # fmt: skip


def make_cfg(transforms: list[str], size: int = 24):
    cfg = extend_cfg(get_cfg_default())
    cfg.INPUT.SIZE = (size, size)
    cfg.INPUT.TRANSFORMS = transforms
    cfg.INPUT.CROP_PADDING = 2
    cfg.INPUT.COLORJITTER_B = cfg.INPUT.COLORJITTER_C = cfg.INPUT.COLORJITTER_S = 0.4
    cfg.INPUT.COLORJITTER_H = 0.1
    cfg.INPUT.GB_K = 3
    cfg.INPUT.GB_P = 0.5
    return cfg


def image(width: int = 40, height: int = 30) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("transforms", [["random_resized_crop", "random_flip", "normalize"], EVERYTHING])
def test_a_view_is_a_function_of_seed_image_and_view_and_replays_from_its_parameters(transforms):
    transform = ViewTransform(make_cfg(transforms))
    img = image()
    first, params = transform(img, view_generator(0, 7, 3))
    again, same = transform(img, view_generator(0, 7, 3))
    assert torch.equal(first, again) and np.array_equal(params, same, equal_nan=True)
    assert first.shape == (3, 24, 24) and params.shape == (transform.n_params,) == (len(transform.param_names),)
    assert torch.equal(transform.apply(img, params), first)  # replay without any generator
    others = [transform(img, view_generator(*key))[1] for key in ((0, 7, 4), (0, 8, 3), (1, 7, 3))]
    assert all(not np.array_equal(params, p, equal_nan=True) for p in others)


def test_without_random_operations_a_view_is_the_ordinary_transform():
    for transforms in (["center_crop", "normalize"], ["normalize"], ["instance_norm"]):
        cfg = make_cfg(transforms)
        img = image()
        view, params = ViewTransform(cfg)(img, view_generator(0, 0, 0))
        assert params.shape == (0,)
        assert torch.equal(view, build_transform(cfg, is_train=True)(img)), transforms


def test_crop_boxes_follow_the_random_resized_crop_distribution():
    cfg = make_cfg(["random_resized_crop", "random_flip"])
    transform = ViewTransform(cfg)
    img = image(64, 48)
    ours = np.array([transform(img, view_generator(0, i, 0))[1] for i in range(400)])
    torch.manual_seed(0)
    theirs = np.array([RandomResizedCrop.get_params(img, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(400)])
    top, left, h, w, flip = ours.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 48).all() and (left + w <= 64).all()
    area, their_area = h * w / (64 * 48), theirs[:, 2] * theirs[:, 3] / (64 * 48)
    assert abs(area.mean() - their_area.mean()) < 0.05 and area.min() >= 0.07
    assert 0.4 < flip.mean() < 0.6


def test_each_epoch_shows_a_fresh_view_and_seeds_see_other_views():
    n_images, n_views = 50, 6
    epochs = np.stack([view_schedule(1, e, n_images, n_views) for e in range(n_views)])  # (epoch, image)
    assert ((epochs >= 0) & (epochs < n_views)).all()
    assert all(len(set(epochs[:, i])) == n_views for i in range(n_images))  # each view once per block of epochs
    other_seed = view_schedule(2, 0, n_images, n_views)
    assert (other_seed != epochs[0]).mean() > 0.5
    assert not np.array_equal(view_schedule(1, n_views, n_images, n_views), epochs[0])  # the next block: new order


def test_the_view_sampler_keeps_the_wrapped_order_and_follows_the_epoch():
    sampler = ViewSampler(SequentialSampler(range(10)), 10, 4, run_seed=3)
    first = list(sampler)
    assert [i for i, _ in first] == list(range(10)) and len(sampler) == 10
    sampler.set_epoch(1)
    second = list(sampler)
    assert [v for _, v in second] == list(view_schedule(3, 1, 10, 4))
    assert all(v1 != v0 for (_, v0), (_, v1) in zip(first, second))


def test_configs_views_cannot_reproduce_are_refused():
    cfg = make_cfg(["random_flip"])
    cfg.DATALOADER.K_TRANSFORMS = 2
    with pytest.raises(ViewConfigError, match="K_TRANSFORMS 1"):
        ViewTransform(cfg)
    with pytest.raises(ViewConfigError, match="cannot be used as views"):
        ViewTransform(make_cfg(["randaugment"]))
