"""FGVCAircraft: ``fgvc_aircraft/images/<id>.jpg`` + ``variants.txt`` + ``images_variant_{train,val,test}.txt``.

100 classes (50 base / 50 novel); there is no split json. ``variants.txt`` lists one variant per line and a
class's label is its line index; each line of ``images_variant_<split>.txt`` is ``<id> <variant words...>``.
Class name: the variant string (``707-320``, ``Cessna 172``).
"""

import os.path as osp

from dassl.data.datasets import DATASET_REGISTRY, Datum

from .common import BenchmarkDataset, DatasetError, DatasetNotFoundError


@DATASET_REGISTRY.register()
class FGVCAircraft(BenchmarkDataset):
    dataset_dir = "fgvc_aircraft"
    image_dir_name = "images"

    def read_data(self):
        variants = self._read_lines("variants.txt")
        cname2lab = {classname: label for label, classname in enumerate(variants)}
        return tuple(
            self._read_split(f"images_variant_{split}.txt", cname2lab) for split in ("train", "val", "test")
        )

    def _read_split(self, filename: str, cname2lab: dict[str, int]) -> list[Datum]:
        items = []
        for line in self._read_lines(filename):
            imname, *words = line.split(" ")
            classname = " ".join(words)
            if classname not in cname2lab:
                raise DatasetError(
                    f"{osp.join(self.dataset_dir, filename)}: variant '{classname}' of image {imname} is not in "
                    "variants.txt; re-download with: python tools/prepare_data.py --download fgvc_aircraft"
                )
            impath = osp.join(self.image_dir, f"{imname}.jpg")
            items.append(Datum(impath=impath, label=cname2lab[classname], classname=classname))
        return items

    def _read_lines(self, filename: str) -> list[str]:
        path = osp.join(self.dataset_dir, filename)
        if not osp.isfile(path):
            raise DatasetNotFoundError(
                f"FGVCAircraft file not found: {path}. The dataset needs variants.txt and "
                "images_variant_{train,val,test}.txt next to images/: python tools/prepare_data.py --download fgvc_aircraft"
            )
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
