"""Miniature copies of every benchmark's real on-disk layout (datasets/catalog.py), with tiny generated images.

``write_layout(stem, root)`` writes the dataset of ``configs/datasets/<stem>.yaml`` under ``root`` and returns a
``Layout`` saying what a correct reader must find. Folder and file names, split files and class names follow the
real datasets (five real classes each, except Caltech101, which reuses ``tests.conftest.make_tiny_caltech``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from tests.conftest import make_tiny_caltech

# images per class and split; 8 train images so that two few-shot seeds pick different files
PER_CLASS = {"train": 8, "val": 2, "test": 3}


@dataclass(frozen=True)
class Layout:
    name: str  # DATASET.NAME
    dataset_dir: str  # folder under DATASET.ROOT
    classnames: list[str]  # by label
    sizes: dict[str, int]  # images per class in each split (variants: "test" only)
    first_train: str  # path of the first train image, relative to DATASET.ROOT
    protocol: bool = True  # few-shot, base/new and the transductive protocol apply

    @property
    def num_classes(self) -> int:
        return len(self.classnames)


def write_image(path: Path, label: int, index: int) -> None:
    """An 8x8 image whose colour depends on the class; the format follows the file extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), ((50 * label) % 256, (11 * index) % 256, 128)).save(path)


# ----------------------------------------------------------------------------------------------------------
# datasets with a CoOp split json


@dataclass(frozen=True)
class JsonSpec:
    name: str
    dataset_dir: str
    image_dir: str  # "" when the split paths start at dataset_dir (StanfordCars)
    split_file: str
    classnames: list[str]
    # (label, split, k = running image number from 1, j = number within the class from 1) -> relative path
    relpath: Callable[[int, str, int, int], str]


PETS = ["Abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle"]
FOOD = ["apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare"]
SUN = ["a/abbey", "a/airplane_cabin", "a/airport_terminal", "a/alley", "a/apartment_building/outdoor"]
DTD = ["banded", "blotchy", "braided", "bubbly", "bumpy"]
EUROSAT = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
}
UCF = ["Apply_Eye_Makeup", "Apply_Lipstick", "Archery", "Baby_Crawling", "Balance_Beam"]

JSON_SPECS = {
    "oxford_pets": JsonSpec(
        "OxfordPets", "oxford_pets", "images", "split_zhou_OxfordPets.json",
        [breed.lower() for breed in PETS],
        lambda y, split, k, j: f"{PETS[y]}_{k}.jpg",
    ),
    "stanford_cars": JsonSpec(
        "StanfordCars", "stanford_cars", "", "split_zhou_StanfordCars.json",
        ["2000 AM General Hummer SUV", "2012 Acura RL Sedan", "2012 Acura TL Sedan", "2008 Acura TL Type-S",
         "2012 Acura TSX Sedan"],
        lambda y, split, k, j: f"cars_{'test' if split == 'test' else 'train'}/{k:05d}.jpg",
    ),
    "oxford_flowers": JsonSpec(
        "OxfordFlowers", "oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json",
        ["pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea", "english marigold"],
        lambda y, split, k, j: f"image_{k:05d}.jpg",
    ),
    "food101": JsonSpec(
        "Food101", "food-101", "images", "split_zhou_Food101.json", FOOD,
        lambda y, split, k, j: f"{FOOD[y]}/{1000000 + 37 * k}.jpg",
    ),
    "sun397": JsonSpec(
        "SUN397", "sun397", "SUN397", "split_zhou_SUN397.json",
        [" ".join(reversed(folder.split("/")[1:])) for folder in SUN],  # "outdoor apartment_building"
        lambda y, split, k, j: f"{SUN[y]}/sun_a{k:04d}.jpg",
    ),
    "dtd": JsonSpec(
        "DescribableTextures", "dtd", "images", "split_zhou_DescribableTextures.json", DTD,
        lambda y, split, k, j: f"{DTD[y]}/{DTD[y]}_{k:04d}.jpg",
    ),
    "eurosat": JsonSpec(
        "EuroSAT", "eurosat", "2750", "split_zhou_EuroSAT.json", list(EUROSAT.values()),
        lambda y, split, k, j: f"{list(EUROSAT)[y]}/{list(EUROSAT)[y]}_{k}.jpg",
    ),
    "ucf101": JsonSpec(
        "UCF101", "ucf101", "UCF-101-midframes", "split_zhou_UCF101.json", UCF,
        lambda y, split, k, j: f"{UCF[y]}/v_{UCF[y].replace('_', '')}_g{j:02d}_c01.jpg",
    ),
}  # fmt: skip


def write_json_dataset(spec: JsonSpec, root: Path) -> Layout:
    dataset_dir = root / spec.dataset_dir
    image_dir = dataset_dir / spec.image_dir
    split: dict[str, list] = {name: [] for name in PER_CLASS}
    k = 0
    for label, classname in enumerate(spec.classnames):
        j = 0
        for name, count in PER_CLASS.items():
            for _ in range(count):
                k, j = k + 1, j + 1
                relpath = spec.relpath(label, name, k, j)
                write_image(image_dir / relpath, label, k)
                split[name].append([relpath, label, classname])
    (dataset_dir / spec.split_file).write_text(json.dumps(split, indent=1))
    first = (Path(spec.dataset_dir) / spec.image_dir / split["train"][0][0]).as_posix()
    return Layout(spec.name, spec.dataset_dir, list(spec.classnames), dict(PER_CLASS), first)


# ----------------------------------------------------------------------------------------------------------
# the others


def write_caltech101(root: Path) -> Layout:
    make_tiny_caltech(
        root, n_train=PER_CLASS["train"], n_val=PER_CLASS["val"], n_test=PER_CLASS["test"], size=8
    )
    classnames = ["face", "leopard", "airplane", "anchor"]
    return Layout(
        "Caltech101",
        "caltech-101",
        classnames,
        dict(PER_CLASS),
        "caltech-101/101_ObjectCategories/Faces/image_0001.jpg",
    )


AIRCRAFT = ["707-320", "737-200", "A300B4", "Cessna 172", "F/A-18"]


def write_fgvc_aircraft(root: Path) -> Layout:
    """``variants.txt`` + ``images_variant_<split>.txt`` (``<id> <variant words...>``, sorted by image id)."""
    dataset_dir = root / "fgvc_aircraft"
    dataset_dir.mkdir(parents=True)
    (dataset_dir / "variants.txt").write_text("".join(f"{variant}\n" for variant in AIRCRAFT))
    first = ""
    for s, (name, count) in enumerate(PER_CLASS.items()):
        lines = []
        for i in range(count):
            for label, variant in enumerate(AIRCRAFT):  # ids interleave the classes, not in label order
                imname = f"{1000000 + 1000 * s + 10 * i + len(AIRCRAFT) - label:07d}"
                write_image(dataset_dir / "images" / f"{imname}.jpg", label, i)
                lines.append(f"{imname} {variant}\n")
        (dataset_dir / f"images_variant_{name}.txt").write_text("".join(sorted(lines)))
        first = first or f"fgvc_aircraft/images/{sorted(lines)[0].split()[0]}.jpg"
    return Layout("FGVCAircraft", "fgvc_aircraft", list(AIRCRAFT), dict(PER_CLASS), first)


# classnames.txt: the real file has 1000 lines, in sorted wnid order; the miniature keeps the first 12
CLASSNAMES_TXT = {
    "n01440764": "tench",
    "n01443537": "goldfish",
    "n01484850": "great white shark",
    "n01491361": "tiger shark",
    "n01494475": "hammerhead shark",
    "n01496331": "electric ray",
    "n01498041": "stingray",
    "n01514668": "rooster",
    "n01514859": "hen",
    "n01518878": "ostrich",
    "n01530575": "brambling",
    "n01531178": "goldfinch",
}
WNIDS = list(CLASSNAMES_TXT)
# the miniature ImageNet has 5 of these classes, so a label (index among the sorted class folders) is not the
# line number in classnames.txt
IMAGENET_WNIDS = WNIDS[0:10:2]


def write_classnames(dataset_dir: Path) -> None:
    dataset_dir.mkdir(parents=True, exist_ok=True)
    (dataset_dir / "classnames.txt").write_text(
        "".join(f"{w} {name}\n" for w, name in CLASSNAMES_TXT.items())
    )


def write_imagenet(root: Path) -> Layout:
    """``images/train/<wnid>/<wnid>_<n>.JPEG`` and ``images/val/<wnid>/ILSVRC2012_val_<n>.JPEG`` + classnames.txt."""
    dataset_dir = root / "imagenet"
    write_classnames(dataset_dir)
    k = 0
    for label, wnid in enumerate(IMAGENET_WNIDS):
        for i in range(PER_CLASS["train"]):
            # unpadded numbers: sorted names are not in numeric order (n01440764_10 < n01440764_9)
            write_image(dataset_dir / "images" / "train" / wnid / f"{wnid}_{9 + i}.JPEG", label, i)
        for i in range(PER_CLASS["test"]):
            k += 1
            write_image(dataset_dir / "images" / "val" / wnid / f"ILSVRC2012_val_{k:08d}.JPEG", label, i)
    first = (
        sorted((dataset_dir / "images" / "train" / IMAGENET_WNIDS[0]).iterdir())[0]
        .relative_to(root)
        .as_posix()
    )
    sizes = {"train": PER_CLASS["train"], "val": 0, "test": PER_CLASS["test"]}
    return Layout("ImageNet", "imagenet", [CLASSNAMES_TXT[w] for w in IMAGENET_WNIDS], sizes, first)


VARIANT_IMAGES = 2  # per class


def write_imagenetv2(root: Path) -> Layout:
    """``imagenetv2-matched-frequency-format-val/<label>/<hash>.jpeg``: one folder per line of classnames.txt,
    named by the label (12 here, so sorting the names would put "10" before "2")."""
    dataset_dir = root / "imagenetv2"
    write_classnames(dataset_dir)
    image_dir = dataset_dir / "imagenetv2-matched-frequency-format-val"
    for label in range(len(CLASSNAMES_TXT)):
        for i in range(VARIANT_IMAGES):
            write_image(
                image_dir / str(label) / f"{(label * 7919 + i * 104729) % 16**8:08x}c0ffee{i}.jpeg", label, i
            )
    first = sorted((image_dir / "0").iterdir())[0]
    return variant_layout("ImageNetV2", "imagenetv2", WNIDS, first.relative_to(root))


def write_wnid_variant(
    root: Path,
    name: str,
    dataset_dir_name: str,
    image_dir_name: str,
    wnids: list[str],
    imname: Callable,
    readme: bool,
) -> Layout:
    dataset_dir = root / dataset_dir_name
    write_classnames(dataset_dir)
    image_dir = dataset_dir / image_dir_name
    for label, wnid in enumerate(wnids):
        for i in range(VARIANT_IMAGES):
            write_image(image_dir / wnid / imname(wnid, i), label, i)
    if readme:
        (image_dir / "README.txt").write_text("This dataset is released under ...\n")
    first = sorted((image_dir / wnids[0]).iterdir())[0]
    return variant_layout(name, dataset_dir_name, wnids, first.relative_to(root))


def variant_layout(name: str, dataset_dir: str, wnids: list[str], first: Path) -> Layout:
    classnames = [CLASSNAMES_TXT[wnid] for wnid in wnids]
    return Layout(name, dataset_dir, classnames, {"test": VARIANT_IMAGES}, first.as_posix(), protocol=False)


WRITERS: dict[str, Callable[[Path], Layout]] = {
    **{stem: (lambda root, spec=spec: write_json_dataset(spec, root)) for stem, spec in JSON_SPECS.items()},
    "caltech101": write_caltech101,
    "fgvc_aircraft": write_fgvc_aircraft,
    "imagenet": write_imagenet,
    "imagenetv2": write_imagenetv2,
    "imagenet_sketch": lambda root: write_wnid_variant(
        root, "ImageNetSketch", "imagenet-sketch", "images", WNIDS, lambda w, i: f"sketch_{i}.JPEG", readme=False
    ),
    # ImageNet-A and -R hold 200 of the 1000 classes (here 4 of the 12): labels are 0..3, not classnames.txt lines
    "imagenet_a": lambda root: write_wnid_variant(
        root, "ImageNetA", "imagenet-adversarial", "imagenet-a", [WNIDS[i] for i in (1, 3, 6, 7)],
        lambda w, i: f"0.00{i}_{CLASSNAMES_TXT[w]} _ {CLASSNAMES_TXT[w]}_0.9{i}.jpg", readme=True,
    ),
    "imagenet_r": lambda root: write_wnid_variant(
        root, "ImageNetR", "imagenet-rendition", "imagenet-r", [WNIDS[i] for i in (0, 5, 10, 11)],
        lambda w, i: f"{('art', 'cartoon')[i]}_{i}.jpg", readme=True,
    ),
}  # fmt: skip

BENCHMARKS = ["imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
              "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101"]  # fmt: skip
VARIANTS = ["imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r"]
ALL = BENCHMARKS + VARIANTS


def write_layout(stem: str, root: Path) -> Layout:
    return WRITERS[stem](root)
