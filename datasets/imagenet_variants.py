"""The ImageNet distribution-shift sets, test-only datasets that reuse ImageNet's class names:

* ImageNetV2: ``imagenetv2/imagenetv2-matched-frequency-format-val/{0..999}/*`` (1000 classes); the folder
  name is the label, and the class name is the label-th entry of ``classnames.txt`` in file order;
* ImageNetSketch: ``imagenet-sketch/images/<wnid>/*`` (1000 classes);
* ImageNetA: ``imagenet-adversarial/imagenet-a/<wnid>/*`` (200 classes; ``README.txt`` is ignored);
* ImageNetR: ``imagenet-rendition/imagenet-r/<wnid>/*`` (200 classes; ``README.txt`` is ignored).

For the wnid-folder sets, label = index of the wnid in the sorted folder list (so 0..199 for -A and -R) and
class name = ``classnames[wnid]``. Each reads ``<dataset_dir>/classnames.txt`` (a copy of ImageNet's).

As upstream, ``train_x = test = all images`` and there is no val split and no few-shot sampling; the evaluation
protocol keeps every class (``class_subsampling = False``): in the distillation domain-generalisation setting a student distils on the
unlabeled target images and is evaluated on them. Images within a folder are sorted (upstream lists them in
file-system order).
"""

from __future__ import annotations

import os.path as osp

from dassl.data.datasets import DATASET_REGISTRY, DatasetBase, Datum
from dassl.utils import listdir_nohidden

from .common import DatasetError, DatasetNotFoundError, read_classnames


class ImageNetVariant(DatasetBase):
    """``<DATASET.ROOT>/<dataset_dir>/<image_dir_name>/<class folder>/*`` + ``<dataset_dir>/classnames.txt``.

    Subclasses set the two folder names; ``read_data`` maps the class folders to labels (default: sorted wnid
    folders).
    """

    dataset_dir = ""
    image_dir_name = ""
    class_subsampling = False  # the evaluation protocol keeps every class of a test-only set

    def __init__(self, cfg) -> None:
        root = osp.abspath(osp.expanduser(cfg.DATASET.ROOT))
        name = type(self).__name__
        self.dataset_dir = osp.join(root, type(self).dataset_dir)
        self.image_dir = osp.join(self.dataset_dir, self.image_dir_name)
        if not osp.isdir(self.image_dir):
            raise DatasetNotFoundError(
                f"{name} not found: expected the image folder {self.image_dir} (DATASET.ROOT = {root}). "
                f"Check --root / $DATA, or run: python tools/prepare_data.py --root {root} --check {name}"
            )
        if cfg.DATASET.NUM_SHOTS >= 1 or cfg.DATASET.SUBSAMPLE_CLASSES != "all":
            print(
                f"Note: {name} is a test set; DATASET.NUM_SHOTS and DATASET.SUBSAMPLE_CLASSES are ignored (as upstream)"
            )
        classnames = read_classnames(osp.join(self.dataset_dir, "classnames.txt"))
        data = self.read_data(classnames)
        super().__init__(train_x=data, test=data)

    def read_data(self, classnames: dict[str, str]) -> list[Datum]:
        wnids = [f for f in listdir_nohidden(self.image_dir, sort=True) if osp.isdir(osp.join(self.image_dir, f))]
        unknown = [wnid for wnid in wnids if wnid not in classnames]
        if unknown:
            raise DatasetError(
                f"{self.image_dir} has class folders that {osp.join(self.dataset_dir, 'classnames.txt')} does not "
                f"list: {unknown[:5]}; copy ImageNet's classnames.txt there"
            )
        return [
            item
            for label, wnid in enumerate(wnids)
            for item in self.read_folder(wnid, label, classnames[wnid])
        ]

    def read_folder(self, folder: str, label: int, classname: str) -> list[Datum]:
        path = osp.join(self.image_dir, folder)
        if not osp.isdir(path):
            raise DatasetNotFoundError(
                f"{type(self).__name__}: class folder {path} is missing; "
                f"python tools/prepare_data.py --check {type(self).__name__} lists what is expected"
            )
        return [
            Datum(impath=osp.join(path, name), label=label, classname=classname)
            for name in listdir_nohidden(path, sort=True)
        ]


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    dataset_dir = "imagenetv2"
    image_dir_name = "imagenetv2-matched-frequency-format-val"

    def read_data(self, classnames: dict[str, str]) -> list[Datum]:
        # folders are named by label; labels follow the order of classnames.txt
        return [
            item
            for label, classname in enumerate(classnames.values())
            for item in self.read_folder(str(label), label, classname)
        ]


@DATASET_REGISTRY.register()
class ImageNetSketch(ImageNetVariant):
    dataset_dir = "imagenet-sketch"
    image_dir_name = "images"


@DATASET_REGISTRY.register()
class ImageNetA(ImageNetVariant):
    dataset_dir = "imagenet-adversarial"
    image_dir_name = "imagenet-a"


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetVariant):
    dataset_dir = "imagenet-rendition"
    image_dir_name = "imagenet-r"
