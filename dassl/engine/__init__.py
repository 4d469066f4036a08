from .build import TRAINER_REGISTRY, build_trainer
from .trainer import ModelNotDefinedError, SimpleTrainer, TrainerBase, TrainerX

__all__ = ["TRAINER_REGISTRY", "build_trainer", "TrainerBase", "SimpleTrainer", "TrainerX", "ModelNotDefinedError"]
