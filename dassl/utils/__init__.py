"""Dassl's ``dassl.utils``: logging, files, seeding, checkpoints, meters and the registry."""

from .logger import Logger, setup_logger
from .meters import AverageMeter, MetricMeter
from .registry import Registry
from .tools import (
    atomic_write_text,
    check_availability,
    check_isfile,
    collect_env_info,
    get_most_similar_str_to_a_from_b,
    listdir_nohidden,
    mkdir_if_missing,
    read_image,
    read_json,
    set_random_seed,
    tolist_if_not,
    write_json,
)
from .torchtools import (
    UntrustedObject,
    count_num_param,
    get_rng_state,
    init_network_weights,
    load_checkpoint,
    load_pretrained_weights,
    open_all_layers,
    open_specified_layers,
    resume_from_checkpoint,
    save_checkpoint,
    set_rng_state,
)

__all__ = [
    "Logger",
    "setup_logger",
    "AverageMeter",
    "MetricMeter",
    "Registry",
    "atomic_write_text",
    "check_availability",
    "check_isfile",
    "collect_env_info",
    "get_most_similar_str_to_a_from_b",
    "listdir_nohidden",
    "mkdir_if_missing",
    "read_image",
    "read_json",
    "set_random_seed",
    "tolist_if_not",
    "write_json",
    "UntrustedObject",
    "count_num_param",
    "get_rng_state",
    "init_network_weights",
    "load_checkpoint",
    "load_pretrained_weights",
    "open_all_layers",
    "open_specified_layers",
    "resume_from_checkpoint",
    "save_checkpoint",
    "set_rng_state",
]
