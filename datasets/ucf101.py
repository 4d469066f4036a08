"""UCF101: ``ucf101/UCF-101-midframes/<Action_Folder>/v_<Action>_g<nn>_c<nn>.jpg`` + ``split_zhou_UCF101.json``.

101 classes (51 base / 50 novel); each image is the middle frame of a video. Class name: the CamelCase action
split into words joined by ``_`` (``ApplyEyeMakeup`` -> ``Apply_Eye_Makeup``; ``_`` becomes a space when the
prompt is built); the split file already holds it.
"""

from dassl.data.datasets import DATASET_REGISTRY

from .common import BenchmarkDataset


@DATASET_REGISTRY.register()
class UCF101(BenchmarkDataset):
    dataset_dir = "ucf101"
    image_dir_name = "UCF-101-midframes"
    split_file = "split_zhou_UCF101.json"
