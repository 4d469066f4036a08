"""``DataManager`` builds the dataset, transforms and data loaders a trainer uses; ``DatasetWrapper`` reads images."""

from __future__ import annotations

import torch
from tabulate import tabulate
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data.distributed import DistributedSampler
from torchvision.transforms import Compose, Normalize, Resize, ToTensor

from dassl.config import ConfigError
from dassl.evaluation.protocol import Protocol, build_protocol, parity_note
from dassl.utils import read_image
from dassl.utils.distributed import world_size

from .datasets import DatasetBase, build_dataset
from .samplers import build_sampler
from .transforms import INTERPOLATION_MODES, build_transform


def build_data_loader(
    cfg,
    sampler_type: str = "SequentialSampler",
    data_source=None,
    batch_size: int = 64,
    n_domain: int = 0,
    n_ins: int = 2,
    tfm=None,
    is_train: bool = True,
    dataset_wrapper=None,
) -> torch.utils.data.DataLoader:
    """A DataLoader over ``data_source`` (Dassl semantics: drop_last only when training on enough data)."""
    if is_train and world_size() > 1:  # each process takes its shard of the epoch (same seed everywhere)
        if sampler_type not in ("RandomSampler", "SequentialSampler"):
            raise ValueError(f"{sampler_type} is not supported in distributed training (use RandomSampler)")
        sampler = DistributedSampler(data_source, shuffle=sampler_type == "RandomSampler", seed=max(cfg.SEED, 0))
    else:
        sampler = build_sampler(
            sampler_type, cfg=cfg, data_source=data_source, batch_size=batch_size, n_domain=n_domain, n_ins=n_ins
        )
    if dataset_wrapper is None:
        dataset_wrapper = DatasetWrapper
    num_workers = cfg.DATALOADER.NUM_WORKERS
    data_loader = torch.utils.data.DataLoader(
        dataset_wrapper(cfg, data_source, transform=tfm, is_train=is_train),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=is_train and len(sampler) >= batch_size,
        pin_memory=(torch.cuda.is_available() and cfg.USE_CUDA),
        persistent_workers=num_workers > 0,
    )
    if len(data_loader) == 0:
        raise ValueError(f"The data loader over {len(data_source)} items with batch size {batch_size} is empty")
    return data_loader


class DataManager:
    """Builds ``dataset``, ``train_loader_x``, ``train_loader_u``, ``val_loader`` (None without val), ``test_loader``
    and one loader per named evaluation of the run's protocol (``eval_loaders``).

    The dataset class returns its full splits; the protocol (``dassl/evaluation/protocol.py``) says which classes
    the model has, which items it trains on and which each evaluation scores. ``dataset`` is the dataset seen
    through the protocol (Dassl API: ``train_x`` = training items, ``val`` = the selection items, ``test`` = the
    main test's items, ``classnames`` = the model's classes); ``source`` is the dataset class's own object.
    """

    def __init__(
        self, cfg, custom_tfm_train=None, custom_tfm_test=None, dataset_wrapper=None, protocol: Protocol | None = None
    ) -> None:
        source = build_dataset(cfg)
        protocol = protocol if protocol is not None else build_protocol(cfg)
        if not getattr(source, "class_subsampling", True) and cfg.DATASET.get("SUBSAMPLE_CLASSES", "all") != "all":
            print(f"Note: {type(source).__name__} is a test set: DATASET.SUBSAMPLE_CLASSES is ignored (as upstream)")
        data = protocol.apply(source)
        selection = protocol.selection
        note = parity_note(protocol)
        if note:
            print(note)
        dataset = DatasetBase(train_x=data.train, train_u=source.train_u, val=data.val,
                              test=data.evaluations[protocol.main])  # fmt: skip
        model_classes = DatasetBase(train_x=data.model_items)

        if custom_tfm_train is None:
            tfm_train = build_transform(cfg, is_train=True)
        else:
            print("* Using custom transform for training")
            tfm_train = custom_tfm_train

        if custom_tfm_test is None:
            tfm_test = build_transform(cfg, is_train=False)
        else:
            print("* Using custom transform for testing")
            tfm_test = custom_tfm_test

        train_loader_x = build_data_loader(
            cfg,
            sampler_type=cfg.DATALOADER.TRAIN_X.SAMPLER,
            data_source=dataset.train_x,
            batch_size=cfg.DATALOADER.TRAIN_X.BATCH_SIZE,
            n_domain=cfg.DATALOADER.TRAIN_X.N_DOMAIN,
            n_ins=cfg.DATALOADER.TRAIN_X.N_INS,
            tfm=tfm_train,
            is_train=True,
            dataset_wrapper=dataset_wrapper,
        )

        train_loader_u = None
        if dataset.train_u:
            sampler_type_ = cfg.DATALOADER.TRAIN_U.SAMPLER
            batch_size_ = cfg.DATALOADER.TRAIN_U.BATCH_SIZE
            n_domain_ = cfg.DATALOADER.TRAIN_U.N_DOMAIN
            n_ins_ = cfg.DATALOADER.TRAIN_U.N_INS
            if cfg.DATALOADER.TRAIN_U.SAME_AS_X:
                sampler_type_ = cfg.DATALOADER.TRAIN_X.SAMPLER
                batch_size_ = cfg.DATALOADER.TRAIN_X.BATCH_SIZE
                n_domain_ = cfg.DATALOADER.TRAIN_X.N_DOMAIN
                n_ins_ = cfg.DATALOADER.TRAIN_X.N_INS
            train_loader_u = build_data_loader(
                cfg,
                sampler_type=sampler_type_,
                data_source=dataset.train_u,
                batch_size=batch_size_,
                n_domain=n_domain_,
                n_ins=n_ins_,
                tfm=tfm_train,
                is_train=True,
                dataset_wrapper=dataset_wrapper,
            )

        def test_loader_of(items):
            return build_data_loader(
                cfg,
                sampler_type=cfg.DATALOADER.TEST.SAMPLER,
                data_source=items,
                batch_size=cfg.DATALOADER.TEST.BATCH_SIZE,
                tfm=tfm_test,
                is_train=False,
                dataset_wrapper=dataset_wrapper,
            )

        # one loader per distinct (images, classes): the selection and the parity base test share one
        eval_loaders: dict[str, torch.utils.data.DataLoader] = {}
        shared: dict[tuple[str, str], torch.utils.data.DataLoader] = {}
        for evaluation in protocol.evaluations:
            items = data.evaluations[evaluation.name]
            if not items:
                continue
            key = (evaluation.images, evaluation.classes)
            if key not in shared:
                shared[key] = test_loader_of(items)
            eval_loaders[evaluation.name] = shared[key]
        val_loader = None
        if dataset.val:
            val_loader = eval_loaders[selection.name] if selection is not None else test_loader_of(dataset.val)
        if protocol.main not in eval_loaders:
            raise ConfigError(f"{type(source).__name__} has no {protocol.get(protocol.main).images} images to test on")
        test_loader = eval_loaders[protocol.main]

        self._num_classes = model_classes.num_classes
        self._num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self._lab2cname = model_classes.lab2cname

        self.source = source
        self.protocol = protocol
        self.partition = data.partition
        self.dataset = dataset
        self.eval_items = data.evaluations
        self.eval_loaders = eval_loaders
        self.train_loader_x = train_loader_x
        self.train_loader_u = train_loader_u
        self.val_loader = val_loader
        self.test_loader = test_loader

        if cfg.VERBOSE:
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def num_source_domains(self) -> int:
        return self._num_source_domains

    @property
    def lab2cname(self) -> dict[int, str]:
        return self._lab2cname

    def show_dataset_summary(self, cfg) -> None:
        dataset_name = cfg.DATASET.NAME
        source_domains = cfg.DATASET.SOURCE_DOMAINS
        target_domains = cfg.DATASET.TARGET_DOMAINS

        table = [["Dataset", dataset_name]]
        if source_domains:
            table.append(["Source", source_domains])
        if target_domains:
            table.append(["Target", target_domains])
        table.append(["# classes", f"{self.num_classes:,}"])
        table.append(["# train_x", f"{len(self.dataset.train_x):,}"])
        if self.dataset.train_u:
            table.append(["# train_u", f"{len(self.dataset.train_u):,}"])
        if self.dataset.val:
            table.append(["# val", f"{len(self.dataset.val):,}"])
        table.append(["# test", f"{len(self.dataset.test):,}"])
        print(tabulate(table))


class DatasetWrapper(TorchDataset):
    """Reads one Datum and returns ``{img, label, domain, impath, index}`` (``img2``... for a list of transforms)."""

    def __init__(self, cfg, data_source, transform=None, is_train: bool = False) -> None:
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform  # accept list (tuple) as input
        self.is_train = is_train
        # Augmenting an image K>1 times is only allowed during training
        self.k_tfm = cfg.DATALOADER.K_TRANSFORMS if is_train else 1
        self.return_img0 = cfg.DATALOADER.RETURN_IMG0

        if self.k_tfm > 1 and transform is None:
            raise ValueError(f"Cannot augment the image {self.k_tfm} times because transform is None")

        # Build transform that doesn't apply any data augmentation
        interp_mode = INTERPOLATION_MODES[cfg.INPUT.INTERPOLATION]
        to_tensor = [Resize(tuple(cfg.INPUT.SIZE), interpolation=interp_mode), ToTensor()]
        if "normalize" in cfg.INPUT.TRANSFORMS:
            to_tensor += [Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)]
        self.to_tensor = Compose(to_tensor)

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, idx: int) -> dict:
        item = self.data_source[idx]
        output = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx}
        try:
            img0 = read_image(item.impath)
        except OSError as err:
            raise OSError(f"Data item {idx} of {len(self.data_source)}: {err}") from err

        if self.transform is not None:
            if isinstance(self.transform, (list, tuple)):
                for i, tfm in enumerate(self.transform):
                    img = self._transform_image(tfm, img0)
                    keyname = "img"
                    if (i + 1) > 1:
                        keyname += str(i + 1)
                    output[keyname] = img
            else:
                output["img"] = self._transform_image(self.transform, img0)
        else:
            output["img"] = img0

        if self.return_img0:
            output["img0"] = self.to_tensor(img0)  # without any augmentation
        return output

    def _transform_image(self, tfm, img0):
        img_list = [tfm(img0) for _ in range(self.k_tfm)]
        img = img_list
        if len(img) == 1:
            img = img[0]
        return img
