"""One table describing every benchmark dataset on disk, for tooling and docs.

Why it exists: ``tools/prepare_data.py`` (download, layout check), the README and the tests all need to know
where each dataset lives under ``DATASET.ROOT``, which split file it reads, how many classes and images to expect
and what the authors' mirror calls its archive. Writing that in each place would let them drift apart, so it is
written once here. The dataset classes themselves (``datasets/<name>.py``) stay the authority on how a split is
*read*; this module imports none of them, so tooling works even where a dataset class is missing or broken.

Numbers come from ``reference-promptkd.md`` §5.1 (class counts; distill-train / test-base / test-novel image
counts from the paper's Table 8). For the split-json datasets and FGVCAircraft the total test count is
base + novel. The test counts of the ImageNet variants are not in §5.1: they are the sizes the datasets' own
releases ship (``sizes_source`` says which numbers come from where). A count that is ``None`` is unknown.
Mismatches are warnings in the tooling, never errors: users may run on subsets.

Mirror: the authors host everything except ImageNet-1k at the HuggingFace dataset repo
``zhengli97/prompt_learning_dataset``. The archive names below are a best guess (``<dataset_dir>.zip``);
``tools/prepare_data.py --url`` overrides them.
"""

from __future__ import annotations

from dataclasses import dataclass

from dassl.evaluation.protocol import base_class_count

__all__ = [
    "CATALOG",
    "DatasetInfo",
    "LAYOUTS",
    "MIRROR_REPO",
    "MIRROR_URL",
    "find_dataset",
    "mirror_url",
]

MIRROR_REPO = "zhengli97/prompt_learning_dataset"
MIRROR_URL = f"https://huggingface.co/datasets/{MIRROR_REPO}/resolve/main/{{archive}}"

# How a dataset's samples are listed:
#   split_json     benchmark split json {"train"|"val"|"test": [[relpath, label, classname], ...]}
#   fgvc_txt       FGVCAircraft: variants.txt + images_variant_{train,val,test}.txt ("<image id> <variant>")
#   imagenet       images/{train,val}/<wnid>/* + classnames.txt ("<wnid> <class name>")
#   class_folders  test-only ImageNet variants: <image_dir>/<class folder>/* + classnames.txt
LAYOUTS = ("split_json", "fgvc_txt", "imagenet", "class_folders")

FGVC_SPLIT_FILES = (
    "variants.txt",
    "images_variant_train.txt",
    "images_variant_val.txt",
    "images_variant_test.txt",
)


@dataclass(frozen=True)
class DatasetInfo:
    """Where one dataset lives under ``DATASET.ROOT`` and what it should contain."""

    stem: str  # configs/datasets/<stem>.yaml and the name on the tools' command lines
    name: str  # DATASET.NAME: the class registered in DATASET_REGISTRY
    dataset_dir: str  # folder under DATASET.ROOT
    image_dir: str  # folder under dataset_dir holding the images (class_folders: the class folders;
    # StanfordCars: cars_train, though its split paths start at dataset_dir: cars_train/..., cars_test/...)
    layout: str  # one of LAYOUTS
    split_files: tuple[str, ...]  # files under dataset_dir that list the samples / class names
    num_classes: int
    train_size: int | None = None  # images in the train split (the student's unlabeled distillation set)
    test_base_size: int | None = None  # test images of the base classes (num_base_classes)
    test_novel_size: int | None = None  # test images of the novel classes
    test_size: int | None = None  # all test images (base + novel where both are known)
    sizes_source: str = "reference-promptkd.md §5.1 (paper Table 8)"
    archive: str | None = None  # file name on the mirror; None: not mirrored (ImageNet-1k)
    paths_relative_to_dataset_dir: bool = False  # StanfordCars: split paths start at dataset_dir
    class_folder_names: str = "wnid"  # class_folders layout: "wnid" folders or "index" folders (0..999)
    aliases: tuple[str, ...] = ()  # folder names users end up with (README typos, upstream class names)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"{self.stem}: layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.test_base_size is not None and self.test_novel_size is not None:
            total = self.test_base_size + self.test_novel_size
            if self.test_size is None:
                object.__setattr__(self, "test_size", total)
            elif self.test_size != total:
                raise ValueError(f"{self.stem}: test_size {self.test_size} != base + novel {total}")

    @property
    def split_file(self) -> str | None:
        """The benchmark split json (``split_json`` layout), else ``None``."""
        return self.split_files[0] if self.layout == "split_json" else None

    @property
    def classnames_file(self) -> str | None:
        """``classnames.txt`` for ImageNet and its variants, else ``None``."""
        return "classnames.txt" if self.layout in ("imagenet", "class_folders") else None

    @property
    def num_base_classes(self) -> int:
        """Base classes, as the evaluation protocol splits them (``dassl.evaluation.protocol.base_class_count``)."""
        return base_class_count(self.num_classes)

    @property
    def num_novel_classes(self) -> int:
        return self.num_classes - self.num_base_classes

    @property
    def test_only(self) -> bool:
        """The ImageNet variants are evaluation sets: no train split."""
        return self.layout == "class_folders"

    @property
    def split_paths_root(self) -> str:
        """Folder (relative to dataset_dir) that split-file paths are relative to."""
        return "" if self.paths_relative_to_dataset_dir else self.image_dir


def _variant(stem: str, name: str, dataset_dir: str, image_dir: str, num_classes: int, test_size: int, **extra) -> DatasetInfo:
    """An ImageNet variant: test-only class folders named by ImageNet's classnames.txt."""
    return DatasetInfo(
        stem=stem,
        name=name,
        dataset_dir=dataset_dir,
        image_dir=image_dir,
        layout="class_folders",
        split_files=("classnames.txt",),
        num_classes=num_classes,
        test_size=test_size,
        sizes_source=_VARIANT_SIZES,
        archive=f"{dataset_dir}.zip",
        **extra,
    )


def _json(
    stem: str,
    name: str,
    dataset_dir: str,
    image_dir: str,
    num_classes: int,
    sizes: tuple[int, int, int],
    aliases: tuple[str, ...] = (),
    **extra,
) -> DatasetInfo:
    train, base, novel = sizes
    return DatasetInfo(
        stem=stem,
        name=name,
        dataset_dir=dataset_dir,
        image_dir=image_dir,
        layout="split_json",
        split_files=(f"split_zhou_{name}.json",),
        num_classes=num_classes,
        train_size=train,
        test_base_size=base,
        test_novel_size=novel,
        archive=f"{dataset_dir}.zip",
        aliases=aliases,
        **extra,
    )


_VARIANT_SIZES = "the variant's own release (not in §5.1)"

# fmt: off
_ENTRIES: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        stem="imagenet",
        name="ImageNet",
        dataset_dir="imagenet",
        image_dir="images",
        layout="imagenet",
        split_files=("classnames.txt",),
        num_classes=1000,
        train_size=1_281_167,
        test_base_size=25_000,  # the official val set (50,000) is the test split
        test_novel_size=25_000,
        archive=None,
        aliases=("ImageNet", "ILSVRC2012", "imagenet-1k", "imagenet1k"),
    ),
    _json("caltech101", "Caltech101", "caltech-101", "101_ObjectCategories", 100, (4128, 1549, 916)),
    _json("oxford_pets", "OxfordPets", "oxford_pets", "images", 37, (2944, 1881, 1788),
          aliases=("oxford-iiit-pet", "pets")),
    _json("stanford_cars", "StanfordCars", "stanford_cars", "cars_train", 196, (6509, 4002, 4039),
          aliases=("StandfordCars", "standford_cars", "cars"), paths_relative_to_dataset_dir=True),
    _json("oxford_flowers", "OxfordFlowers", "oxford_flowers", "jpg", 102, (4093, 1053, 1410),
          aliases=("flowers102", "oxford-102-flowers", "flowers")),
    _json("food101", "Food101", "food-101", "images", 101, (50500, 15300, 15000)),
    DatasetInfo(
        stem="fgvc_aircraft",
        name="FGVCAircraft",
        dataset_dir="fgvc_aircraft",
        image_dir="images",
        layout="fgvc_txt",
        split_files=FGVC_SPLIT_FILES,
        num_classes=100,
        train_size=3334,
        test_base_size=1666,
        test_novel_size=1667,
        archive="fgvc_aircraft.zip",
        aliases=("FGVCaircraft", "fgvc-aircraft-2013b", "aircraft"),
    ),
    _json("sun397", "SUN397", "sun397", "SUN397", 397, (15880, 9950, 9900)),
    _json("dtd", "DescribableTextures", "dtd", "images", 47, (2820, 864, 828), aliases=("textures",)),
    _json("eurosat", "EuroSAT", "eurosat", "2750", 10, (13500, 4200, 3900)),
    _json("ucf101", "UCF101", "ucf101", "UCF-101-midframes", 101, (7639, 1934, 1849)),
    _variant("imagenetv2", "ImageNetV2", "imagenetv2", "imagenetv2-matched-frequency-format-val", 1000, 10_000,
             class_folder_names="index", aliases=("imagenet-v2", "imagenet_v2")),
    _variant("imagenet_sketch", "ImageNetSketch", "imagenet-sketch", "images", 1000, 50_889),
    _variant("imagenet_a", "ImageNetA", "imagenet-adversarial", "imagenet-a", 200, 7_500,
             aliases=("imagenet-a", "imagenet_adversarial")),
    _variant("imagenet_r", "ImageNetR", "imagenet-rendition", "imagenet-r", 200, 30_000,
             aliases=("imagenet-r", "imagenet_rendition")),
)
# fmt: on

CATALOG: dict[str, DatasetInfo] = {info.stem: info for info in _ENTRIES}


def mirror_url(info: DatasetInfo) -> str | None:
    """The mirror URL of a dataset's archive (``None`` for ImageNet-1k, which is not mirrored)."""
    return MIRROR_URL.format(archive=info.archive) if info.archive else None


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def find_dataset(name: str) -> DatasetInfo:
    """Look a dataset up by config stem, DATASET.NAME or folder name, ignoring case, ``-`` and ``_``."""
    key = _normalise(name)
    for info in _ENTRIES:
        if key in {_normalise(info.stem), _normalise(info.name), _normalise(info.dataset_dir)}:
            return info
    raise KeyError(f"unknown dataset {name!r}; known: {', '.join(CATALOG)}")
