"""Views as data: the training augmentation of image ``i`` in view ``v`` as a deterministic function of
(bank seed, i, v), so a teacher's output for that view can be computed once and replayed (Fast Knowledge
Distillation, Shen & Xing, ECCV 2022: store each crop's coordinates and the teacher's output).

* ``ViewTransform`` runs the pipeline that ``INPUT.TRANSFORMS`` names (same operations, order and parameter
  distributions as ``build_transform(cfg, is_train=True)``), but every random draw comes from a generator seeded by
  (bank seed, i, v), and the draws are returned as a flat vector of *view parameters* (crop box, flip, jitter
  factors, ...). Given the parameters, ``apply`` redoes the view without any generator.
* ``view_schedule``: the view a run of seed s shows of each image at epoch e. Within each block of ``n_views``
  epochs an image walks through all its views once, starting at an offset drawn from (s, block): a fresh view
  every epoch (while epochs <= views), and other seeds see other views at the same epoch.
* ``ViewSampler`` wraps a loader's index sampler and yields ``(index, view)``; ``ViewDataset`` reads the image and
  returns the view with its index, view number and parameters. ``build_view_loader`` makes the train loader.

The ordinary random augmentation stays the default; these are used when a trainer asks for views as data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from dassl.utils import read_image
from dassl.utils.distributed import world_size
from dassl.utils.errors import UserError

from .samplers import build_sampler
from .transforms import AVAI_CHOICES, INTERPOLATION_MODES

# Bumped whenever the parameterisation or the sampling of any operation changes: part of every bank key.
VIEW_ALGORITHM = 1


class ViewConfigError(UserError, ValueError):
    """A transform config that views as data cannot reproduce."""


def view_generator(bank_seed: int, index: int, view: int) -> torch.Generator:
    """The generator that draws view ``view`` of image ``index`` (64-bit seed mixed from the three numbers)."""
    if bank_seed < 0 or index < 0 or view < 0:
        raise ValueError(f"bank seed, index and view must be >= 0, got {bank_seed}, {index}, {view}")
    state = np.random.SeedSequence([bank_seed, index, view, 0x56494557]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator()
    generator.manual_seed((int(state[0]) << 31) ^ int(state[1]))
    return generator


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=g, dtype=torch.float64).item()


def _randint(g: torch.Generator, low: int, high: int) -> int:
    """An integer in [low, high) (``high > low``)."""
    return int(torch.randint(low, high, (), generator=g).item())


def _size(img) -> tuple[int, int]:
    """(height, width) of a PIL image or a (C, H, W) tensor."""
    if isinstance(img, torch.Tensor):
        return int(img.shape[-2]), int(img.shape[-1])
    return img.height, img.width


class _Op:
    """One pipeline step: ``sample`` draws its parameters for the current image, ``apply`` uses them."""

    names: tuple[str, ...] = ()  # the parameters it stores, in order

    def sample(self, g: torch.Generator, img) -> list[float]:
        return []

    def apply(self, img, params: Sequence[float]):
        raise NotImplementedError


class _Resize(_Op):
    def __init__(self, size, interpolation, shorter_side: bool = False) -> None:
        self.size = max(size) if shorter_side else list(size)
        self.interpolation = interpolation

    def apply(self, img, params):
        return TF.resize(img, self.size, interpolation=self.interpolation, antialias=True)


class _Translation(_Op):
    """Dassl's Random2DTranslation: with probability p enlarge by 1/8 and crop a random patch; else resize."""

    names = ("translate", "x1", "y1")

    def __init__(self, height: int, width: int, interpolation, p: float = 0.5) -> None:
        self.height, self.width, self.p, self.interpolation = height, width, p, interpolation
        self.big = (int(round(height * 1.125)), int(round(width * 1.125)))

    def sample(self, g, img):
        if _uniform(g, 0, 1) > self.p:
            return [0.0, 0.0, 0.0]
        x1 = int(round(_uniform(g, 0, self.big[1] - self.width)))
        y1 = int(round(_uniform(g, 0, self.big[0] - self.height)))
        return [1.0, float(x1), float(y1)]

    def apply(self, img, params):
        if not params[0]:
            return TF.resize(img, [self.height, self.width], interpolation=self.interpolation, antialias=True)
        big = TF.resize(img, list(self.big), interpolation=self.interpolation, antialias=True)
        return TF.crop(big, int(params[2]), int(params[1]), self.height, self.width)


class _Crop(_Op):
    """RandomCrop(size, padding): zero-pad, then a random window of the target size."""

    names = ("top", "left")

    def __init__(self, size, padding: int) -> None:
        self.size, self.padding = tuple(size), padding

    def _padded(self, img):
        return TF.pad(img, self.padding) if self.padding else img

    def sample(self, g, img):
        h, w = _size(img)
        h, w = h + 2 * self.padding, w + 2 * self.padding
        if h < self.size[0] or w < self.size[1]:
            raise ViewConfigError(f"random_crop: image {h}x{w} (padded) is smaller than INPUT.SIZE {self.size}")
        return [float(_randint(g, 0, h - self.size[0] + 1)), float(_randint(g, 0, w - self.size[1] + 1))]

    def apply(self, img, params):
        return TF.crop(self._padded(img), int(params[0]), int(params[1]), *self.size)


class _ResizedCrop(_Op):
    """RandomResizedCrop: a box of random area fraction (``scale``) and log-uniform aspect ratio in [3/4, 4/3],
    up to 10 tries, else the centred box of the clamped aspect ratio; resized to the target size."""

    names = ("top", "left", "height", "width")

    def __init__(self, size, scale, interpolation, ratio=(3 / 4, 4 / 3)) -> None:
        self.size, self.scale, self.ratio, self.interpolation = list(size), tuple(scale), tuple(ratio), interpolation

    def sample(self, g, img):
        height, width = _size(img)
        area = height * width
        log_low, log_high = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * _uniform(g, self.scale[0], self.scale[1])
            aspect = math.exp(_uniform(g, log_low, log_high))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return [float(_randint(g, 0, height - h + 1)), float(_randint(g, 0, width - w + 1)), float(h), float(w)]
        image_ratio = width / height
        if image_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif image_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        return [float((height - h) // 2), float((width - w) // 2), float(h), float(w)]

    def apply(self, img, params):
        top, left, h, w = (int(p) for p in params)
        return TF.resized_crop(img, top, left, h, w, self.size, interpolation=self.interpolation, antialias=True)


class _CenterCrop(_Op):
    def __init__(self, size) -> None:
        self.size = list(size)

    def apply(self, img, params):
        return TF.center_crop(img, self.size)


class _Flip(_Op):
    names = ("flip",)

    def sample(self, g, img):
        return [1.0 if _uniform(g, 0, 1) < 0.5 else 0.0]

    def apply(self, img, params):
        return TF.hflip(img) if params[0] else img


class _ColorJitter(_Op):
    """ColorJitter: the four adjustments in a random order, each factor uniform in its range (NaN = off)."""

    names = ("order0", "order1", "order2", "order3", "brightness", "contrast", "saturation", "hue")

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        def around_one(x: float):
            return (max(0.0, 1 - x), 1 + x) if x > 0 else None

        self.ranges = [around_one(brightness), around_one(contrast), around_one(saturation), (-hue, hue) if hue > 0 else None]

    def sample(self, g, img):
        order = torch.randperm(4, generator=g).tolist()
        factors = [_uniform(g, *r) if r is not None else math.nan for r in self.ranges]
        return [float(o) for o in order] + factors

    def apply(self, img, params):
        adjust = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        for which in params[:4]:
            factor = params[4 + int(which)]
            if not math.isnan(factor):
                img = adjust[int(which)](img, factor)
        return img


class _Grayscale(_Op):
    names = ("grayscale",)

    def __init__(self, p: float) -> None:
        self.p = p

    def sample(self, g, img):
        return [1.0 if _uniform(g, 0, 1) < self.p else 0.0]

    def apply(self, img, params):
        if not params[0]:
            return img
        channels = len(img.getbands()) if isinstance(img, Image.Image) else img.shape[-3]
        return TF.rgb_to_grayscale(img, num_output_channels=channels)


class _Blur(_Op):
    """RandomApply([GaussianBlur(k, sigma in [0.1, 2])], p)."""

    names = ("blur", "sigma")

    def __init__(self, kernel: int, p: float) -> None:
        self.kernel, self.p = kernel, p

    def sample(self, g, img):
        if _uniform(g, 0, 1) >= self.p:
            return [0.0, math.nan]
        return [1.0, _uniform(g, 0.1, 2.0)]

    def apply(self, img, params):
        return TF.gaussian_blur(img, [self.kernel, self.kernel], [params[1], params[1]]) if params[0] else img


class _ToTensor(_Op):
    def apply(self, img, params):
        return TF.to_tensor(img)


class _Cutout(_Op):
    def __init__(self, n_holes: int, length: int) -> None:
        self.n_holes, self.length = n_holes, length
        self.names = tuple(f"hole{k}_{axis}" for k in range(n_holes) for axis in ("y", "x"))

    def sample(self, g, img):
        h, w = _size(img)
        return [float(v) for _ in range(self.n_holes) for v in (_randint(g, 0, h), _randint(g, 0, w))]

    def apply(self, img, params):
        h, w = _size(img)
        mask = torch.ones((h, w), dtype=img.dtype)
        for k in range(self.n_holes):
            y, x = int(params[2 * k]), int(params[2 * k + 1])
            mask[max(0, y - self.length // 2) : min(h, y + self.length // 2),
                 max(0, x - self.length // 2) : min(w, x + self.length // 2)] = 0.0  # fmt: skip
        return img * mask.expand_as(img)


class _Normalize(_Op):
    def __init__(self, mean, std) -> None:
        self.mean, self.std = list(mean), list(std)

    def apply(self, img, params):
        return TF.normalize(img, self.mean, self.std)


class _Noise(_Op):
    """GaussianNoise with probability p; the noise itself comes from a stored 31-bit seed."""

    names = ("noise", "noise_seed")

    def __init__(self, mean: float, std: float, p: float = 0.5) -> None:
        self.mean, self.std, self.p = mean, std, p

    def sample(self, g, img):
        if _uniform(g, 0, 1) > self.p:
            return [0.0, 0.0]
        return [1.0, float(_randint(g, 0, 2**31 - 1))]

    def apply(self, img, params):
        if not params[0]:
            return img
        noise = torch.randn(img.shape, generator=torch.Generator().manual_seed(int(params[1])))
        return img + noise * self.std + self.mean


class _InstanceNorm(_Op):
    def apply(self, img, params):
        flat = img.reshape(img.shape[0], -1)
        mean = flat.mean(1).view(-1, 1, 1)
        std = flat.std(1).view(-1, 1, 1)
        return (img - mean) / (std + 1e-8)


class ViewTransform:
    """The ``INPUT.TRANSFORMS`` training pipeline with recorded parameters (see the module docstring)."""

    def __init__(self, cfg) -> None:
        choices = list(cfg.INPUT.TRANSFORMS)
        unknown = [c for c in choices if c not in AVAI_CHOICES]
        if unknown:
            raise ViewConfigError(f"INPUT.TRANSFORMS {unknown} cannot be used as views; supported: {AVAI_CHOICES}")
        if cfg.INPUT.NO_TRANSFORM:
            raise ViewConfigError("INPUT.NO_TRANSFORM True leaves nothing to record as views; set it False")
        if cfg.DATALOADER.K_TRANSFORMS > 1 or cfg.DATALOADER.RETURN_IMG0:
            raise ViewConfigError("views as data give one view per image and step: set DATALOADER.K_TRANSFORMS 1 "
                                  "and DATALOADER.RETURN_IMG0 False")
        interp = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
        size = tuple(cfg.INPUT.SIZE)
        inp = cfg.INPUT
        ops: list[_Op] = []
        if "random_crop" not in choices and "random_resized_crop" not in choices:
            ops.append(_Resize(size, interp))
        if "random_translation" in choices:
            ops.append(_Translation(size[0], size[1], INTERPOLATION_MODES["bilinear"]))  # Dassl's fixed mode
        if "random_crop" in choices:
            ops.append(_Crop(size, inp.CROP_PADDING))
        if "random_resized_crop" in choices:
            ops.append(_ResizedCrop(size, inp.RRCROP_SCALE, interp))
        if "center_crop" in choices:
            ops.append(_CenterCrop(size))
        if "random_flip" in choices:
            ops.append(_Flip())
        if "colorjitter" in choices:
            ops.append(_ColorJitter(inp.COLORJITTER_B, inp.COLORJITTER_C, inp.COLORJITTER_S, inp.COLORJITTER_H))
        if "randomgrayscale" in choices:
            ops.append(_Grayscale(inp.RGS_P))
        if "gaussian_blur" in choices:
            ops.append(_Blur(inp.GB_K, inp.GB_P))
        ops.append(_ToTensor())
        if "cutout" in choices:
            ops.append(_Cutout(inp.CUTOUT_N, inp.CUTOUT_LEN))
        if "normalize" in choices:
            ops.append(_Normalize(inp.PIXEL_MEAN, inp.PIXEL_STD))
        if "gaussian_noise" in choices:
            ops.append(_Noise(inp.GN_MEAN, inp.GN_STD))
        if "instance_norm" in choices:
            ops.append(_InstanceNorm())
        self.ops = ops
        self.param_names = [name for op in ops for name in op.names]

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def __call__(self, img, generator: torch.Generator) -> tuple[torch.Tensor, np.ndarray]:
        """The view and its parameters (float64, ``n_params``), drawing from ``generator``."""
        params: list[float] = []
        for op in self.ops:
            drawn = op.sample(generator, img)
            img = op.apply(img, drawn)
            params += drawn
        return img, np.asarray(params, dtype=np.float64)

    def apply(self, img, params: Sequence[float]) -> torch.Tensor:
        """Redo a recorded view from its parameters (no generator)."""
        start = 0
        for op in self.ops:
            img = op.apply(img, params[start : start + len(op.names)])
            start += len(op.names)
        return img


def view_schedule(run_seed: int, epoch: int, n_images: int, n_views: int) -> np.ndarray:
    """The view (0..n_views-1) each image shows at ``epoch`` in a run of ``run_seed`` (int64, ``n_images``)."""
    block, step = divmod(epoch, n_views)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([max(run_seed, 0), block, 0x5343484E])))
    offsets = rng.integers(0, n_views, size=n_images)
    return (offsets + step) % n_views


class ViewSampler(Sampler):
    """Yields ``(index, view)``: the wrapped sampler's order, each image's view from ``view_schedule``."""

    def __init__(self, sampler: Sampler, n_images: int, n_views: int, run_seed: int) -> None:
        self.sampler, self.n_images, self.n_views, self.run_seed = sampler, n_images, n_views, run_seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        views = view_schedule(self.run_seed, self.epoch, self.n_images, self.n_views)
        for index in self.sampler:
            yield int(index), int(views[index])

    def __len__(self) -> int:
        return len(self.sampler)


class ViewDataset(Dataset):
    """Image ``index`` in view ``view`` -> ``{img, label, domain, impath, index, view, view_params}``."""

    def __init__(self, data_source, transform: ViewTransform, bank_seed: int) -> None:
        self.data_source, self.transform, self.bank_seed = data_source, transform, bank_seed

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, view = key
        item = self.data_source[index]
        try:
            img0 = read_image(item.impath)
        except OSError as err:
            raise OSError(f"Data item {index} of {len(self.data_source)}: {err}") from err
        img, params = self.transform(img0, view_generator(self.bank_seed, index, view))
        return {"img": img, "label": item.label, "domain": item.domain, "impath": item.impath, "index": index,
                "view": view, "view_params": torch.from_numpy(params)}  # fmt: skip


def build_view_loader(cfg, data_source, *, n_views: int, bank_seed: int, batch_size: int, sampler_type: str):
    """The training loader over views as data (Dassl's loader semantics: sampler, drop_last, workers)."""
    if world_size() > 1:
        if sampler_type not in ("RandomSampler", "SequentialSampler"):
            raise ValueError(f"{sampler_type} is not supported in distributed training (use RandomSampler)")
        base = DistributedSampler(data_source, shuffle=sampler_type == "RandomSampler", seed=max(cfg.SEED, 0))
    else:
        base = build_sampler(sampler_type, cfg=cfg, data_source=data_source, batch_size=batch_size,
                             n_domain=cfg.DATALOADER.TRAIN_X.N_DOMAIN, n_ins=cfg.DATALOADER.TRAIN_X.N_INS)  # fmt: skip
    sampler = ViewSampler(base, len(data_source), n_views, cfg.SEED)
    workers = cfg.DATALOADER.NUM_WORKERS
    loader = torch.utils.data.DataLoader(
        ViewDataset(data_source, ViewTransform(cfg), bank_seed), batch_size=batch_size, sampler=sampler,
        num_workers=workers, drop_last=len(sampler) >= batch_size,
        pin_memory=torch.cuda.is_available() and cfg.USE_CUDA, persistent_workers=workers > 0,
    )  # fmt: skip
    if len(loader) == 0:
        raise ValueError(f"The data loader over {len(data_source)} items with batch size {batch_size} is empty")
    return loader


__all__ = ["VIEW_ALGORITHM", "ViewTransform", "ViewSampler", "ViewDataset", "build_view_loader", "view_generator",
           "view_schedule", "ViewConfigError"]  # fmt: skip
