"""``Datum`` and ``DatasetBase``: the data-source containers every dataset class returns (Dassl API).

The few-shot sampler draws with python's global ``random`` in the same order as Dassl, so for the same seed
and split file the same images are picked.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from dassl.utils import check_isfile


class Datum:
    """One data instance: image path, label, domain and class name (read-only)."""

    def __init__(self, impath: str = "", label: int = 0, domain: int = 0, classname: str = "") -> None:
        if not isinstance(impath, str):
            raise TypeError(f"impath must be a str, got {type(impath).__name__}")
        if not check_isfile(impath):
            raise FileNotFoundError(
                f"Image listed by the dataset does not exist: {impath}. Check DATASET.ROOT and the dataset "
                "layout (python tools/prepare_data.py --check reports every missing file)."
            )
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname

    @property
    def impath(self) -> str:
        return self._impath

    @property
    def label(self) -> int:
        return self._label

    @property
    def domain(self) -> int:
        return self._domain

    @property
    def classname(self) -> str:
        return self._classname

    def __repr__(self) -> str:
        return f"Datum(impath={self._impath!r}, label={self._label}, domain={self._domain}, classname={self._classname!r})"


class DatasetBase:
    """A dataset = lists of Datum for train_x (labeled), train_u (unlabeled), val and test."""

    dataset_dir = ""  # the directory where the dataset is stored
    domains: list[str] = []  # string names of all domains

    # whether the evaluation protocol may keep only base / new classes (test-only sets say False)
    class_subsampling = True

    def __init__(
        self,
        train_x: list[Datum] | None = None,
        train_u: list[Datum] | None = None,
        val: list[Datum] | None = None,
        test: list[Datum] | None = None,
    ) -> None:
        self._train_x = train_x  # labeled training data
        self._train_u = train_u  # unlabeled training data (optional)
        self._val = val  # validation data (optional)
        self._test = test  # test data
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    @property
    def train_x(self) -> list[Datum] | None:
        return self._train_x

    @property
    def train_u(self) -> list[Datum] | None:
        return self._train_u

    @property
    def val(self) -> list[Datum] | None:
        return self._val

    @property
    def test(self) -> list[Datum] | None:
        return self._test

    @property
    def lab2cname(self) -> dict[int, str]:
        return self._lab2cname

    @property
    def classnames(self) -> list[str]:
        return self._classnames

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @staticmethod
    def get_num_classes(data_source: list[Datum]) -> int:
        """Number of classes = max label + 1."""
        label_set = {item.label for item in data_source}
        return max(label_set) + 1

    @staticmethod
    def get_lab2cname(data_source: list[Datum]) -> tuple[dict[int, str], list[str]]:
        """Label -> class name mapping, and the class names sorted by label."""
        container = {(item.label, item.classname) for item in data_source}
        mapping = {label: classname for label, classname in container}
        labels = sorted(mapping.keys())
        classnames = [mapping[label] for label in labels]
        return mapping, classnames

    def check_input_domains(self, source_domains: list[str], target_domains: list[str]) -> None:
        assert len(source_domains) > 0, "source_domains (list) is empty"
        assert len(target_domains) > 0, "target_domains (list) is empty"
        self.is_input_domain_valid(source_domains)
        self.is_input_domain_valid(target_domains)

    def is_input_domain_valid(self, input_domains: list[str]) -> None:
        for domain in input_domains:
            if domain not in self.domains:
                raise ValueError(f"Input domain must belong to {self.domains}, but got [{domain}]")

    def generate_fewshot_dataset(self, *data_sources: list[Datum], num_shots: int = -1, repeat: bool = False) -> Any:
        """Sample ``num_shots`` items per class from each data source (python ``random``, Dassl's draw order).

        Classes with fewer items keep all of them (or sample with replacement when ``repeat``).
        Returns a list for one data source, else a list of lists.
        """
        if num_shots < 1:
            if len(data_sources) == 1:
                return data_sources[0]
            return data_sources

        print(f"Creating a {num_shots}-shot dataset")
        output = []
        for data_source in data_sources:
            tracker = self.split_dataset_by_label(data_source)
            dataset: list[Datum] = []
            for _label, items in tracker.items():
                if len(items) >= num_shots:
                    sampled_items = random.sample(items, num_shots)
                elif repeat:
                    sampled_items = random.choices(items, k=num_shots)
                else:
                    sampled_items = items
                dataset.extend(sampled_items)
            output.append(dataset)
        if len(output) == 1:
            return output[0]
        return output

    def split_dataset_by_label(self, data_source: list[Datum]) -> dict[int, list[Datum]]:
        """Group items by label, in order of first appearance."""
        output: dict[int, list[Datum]] = defaultdict(list)
        for item in data_source:
            output[item.label].append(item)
        return output

    def split_dataset_by_domain(self, data_source: list[Datum]) -> dict[int, list[Datum]]:
        """Group items by domain, in order of first appearance."""
        output: dict[int, list[Datum]] = defaultdict(list)
        for item in data_source:
            output[item.domain].append(item)
        return output
