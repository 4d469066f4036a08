"""Samplers selected by ``DATALOADER.*.SAMPLER`` (the ones prompt learning uses, plus class-balanced batches)."""

from __future__ import annotations

import copy
import random
from collections import defaultdict

from torch.utils.data.sampler import RandomSampler, Sampler, SequentialSampler

AVAI_SAMPLERS = ["RandomSampler", "SequentialSampler", "RandomClassSampler"]


class RandomClassSampler(Sampler):
    """Batches of ``n_ins`` instances from each of ``batch_size // n_ins`` random classes."""

    def __init__(self, data_source, batch_size: int, n_ins: int) -> None:
        if batch_size < n_ins:
            raise ValueError(f"batch_size={batch_size} must be no less than n_ins={n_ins}")
        self.data_source = data_source
        self.batch_size = batch_size
        self.n_ins = n_ins
        self.ncls_per_batch = self.batch_size // self.n_ins
        self.index_dic = defaultdict(list)
        for index, item in enumerate(data_source):
            self.index_dic[item.label].append(index)
        self.labels = list(self.index_dic.keys())
        if len(self.labels) < self.ncls_per_batch:
            raise ValueError("Fewer classes than classes per batch for RandomClassSampler")
        self.length = len(list(self.__iter__()))

    def __iter__(self):
        batch_idxs_dict = defaultdict(list)
        for label in self.labels:
            idxs = copy.deepcopy(self.index_dic[label])
            if len(idxs) < self.n_ins:
                idxs = [random.choice(idxs) for _ in range(self.n_ins)]
            random.shuffle(idxs)
            batch_idxs = []
            for idx in idxs:
                batch_idxs.append(idx)
                if len(batch_idxs) == self.n_ins:
                    batch_idxs_dict[label].append(batch_idxs)
                    batch_idxs = []
        avai_labels = copy.deepcopy(self.labels)
        final_idxs = []
        while len(avai_labels) >= self.ncls_per_batch:
            selected_labels = random.sample(avai_labels, self.ncls_per_batch)
            for label in selected_labels:
                batch_idxs = batch_idxs_dict[label].pop(0)
                final_idxs.extend(batch_idxs)
                if len(batch_idxs_dict[label]) == 0:
                    avai_labels.remove(label)
        return iter(final_idxs)

    def __len__(self) -> int:
        return self.length


def build_sampler(sampler_type: str, cfg=None, data_source=None, batch_size: int = 32, n_domain: int = 0, n_ins: int = 16):
    """Build a sampler by its Dassl name."""
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    if sampler_type == "RandomClassSampler":
        return RandomClassSampler(data_source, batch_size, n_ins)
    raise ValueError(f"Unknown sampler '{sampler_type}'; supported: {AVAI_SAMPLERS}")
