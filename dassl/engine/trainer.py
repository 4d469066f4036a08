"""The training loop: ``TrainerBase`` (model registry, checkpoints, hooks), ``SimpleTrainer`` (data, eval,
best-model selection) and ``TrainerX`` (one epoch over the labeled data).

A method overrides ``build_model`` and ``forward_backward`` (and, where it differs, ``model_inference``,
``parse_batch_*``, ``load_model`` or ``test``); the rest is shared. Behaviour follows Dassl.pytorch, with three
additions that never change results: checkpoints are written atomically, a ``model-last.pth.tar`` (with RNG
states) after every epoch lets a killed run resume exactly, and every evaluation is written to ``results.json``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os.path as osp
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm
from yacs.config import CfgNode

from dassl.config import ConfigError
from dassl.data import DataManager
from dassl.evaluation import build_evaluator
from dassl.evaluation.protocol import Evaluation, build_protocol
from dassl.evaluation.results import SCHEMA_VERSION, check_results, experiment_config_id, summarize
from dassl.utils import (
    AverageMeter,
    MetricMeter,
    announce,
    console_stream,
    detail,
    get_rng_state,
    load_checkpoint,
    mkdir_if_missing,
    save_checkpoint,
    set_rng_state,
    tolist_if_not,
    write_json,
)
from dassl.utils.distributed import all_reduce_gradients, broadcast_from_main, is_main_process, world_size
from dassl.utils.errors import NonFiniteError, RunStateError, UserError
from dassl.utils.faults import fault_point
from dassl.utils.torchtools import CheckpointNotFoundError

from .run_folder import RunFolder, config_fingerprint, describe_differences


class ModelNotDefinedError(UserError, NotImplementedError):
    """A trainer that does not build its model (``build_model`` is the one method every trainer must write)."""


class TrainerBase:
    """Model registry, checkpoints, LR updates, tensorboard and the epoch loop with its hooks."""

    @classmethod
    def config_defaults(cls) -> dict[str, CfgNode]:
        """The config nodes this trainer reads beyond the engine defaults, ``{full node path: node}`` (e.g.
        ``{"TRAINER.COOP": CfgNode({"N_CTX": 16, ...})}``), with their defaults.

        The config is assembled from every registered trainer's nodes before any yaml is merged (yacs rejects keys
        without a default), so a method file carries its own keys. Default: none.
        """
        return {}

    def __init__(self) -> None:
        self._models: OrderedDict[str, nn.Module] = OrderedDict()
        self._optims: OrderedDict = OrderedDict()
        self._scheds: OrderedDict = OrderedDict()
        self._writer = None

    def register_model(self, name: str = "model", model: nn.Module | None = None, optim=None, sched=None) -> None:
        """Register a model (with its optimizer and scheduler) to be trained, saved and loaded under ``name``."""
        if self.__dict__.get("_models") is None:
            raise AttributeError("Cannot assign model before super().__init__() call")
        if self.__dict__.get("_optims") is None:
            raise AttributeError("Cannot assign optim before super().__init__() call")
        if self.__dict__.get("_scheds") is None:
            raise AttributeError("Cannot assign sched before super().__init__() call")
        if name in self._models:
            raise KeyError(f"Found duplicate model names: {name}")
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names=None) -> list[str]:
        names_real = list(self._models.keys())
        if names is not None:
            names = tolist_if_not(names)
            for name in names:
                if name not in names_real:
                    raise KeyError(f"Model '{name}' is not registered; registered: {names_real}")
            return names
        return names_real

    def save_model(
        self,
        epoch: int,
        directory: str,
        is_best: bool = False,
        val_result=None,
        model_name: str = "",
        update_pointer: bool = True,
    ) -> None:
        """Write ``{state_dict, epoch: epoch+1, optimizer, scheduler, val_result}`` for every registered model.

        Only the main process writes (in distributed training every process holds the same weights). A state with
        a non-finite tensor is never written (``NonFiniteError``): the last good checkpoint stays the resume point.
        """
        if not is_main_process():
            return
        for name in self.get_model_names():
            model_dict = self.model_state_dict(name)
            self.check_finite(model_dict, f"the {name} checkpoint of epoch {epoch + 1}")
            optim_dict = self._optims[name].state_dict() if self._optims[name] is not None else None
            sched_dict = self._scheds[name].state_dict() if self._scheds[name] is not None else None
            state = {
                "state_dict": model_dict,
                "epoch": epoch + 1,
                "optimizer": optim_dict,
                "scheduler": sched_dict,
                "val_result": val_result,
            }
            state.update(self.checkpoint_extras())
            save_checkpoint(
                state, osp.join(directory, name), is_best=is_best, model_name=model_name, update_pointer=update_pointer
            )

    def model_state_dict(self, name: str) -> dict:
        """What goes into a checkpoint for model ``name``; trainers that save only trainable tensors override it."""
        return self._models[name].state_dict()

    def checkpoint_extras(self) -> dict:
        """Extra keys stored in every checkpoint (resume bookkeeping)."""
        return {}

    def resume_model_if_exist(self, directory: str) -> int:
        """Resume every registered model from ``directory/<name>/checkpoint`` if present; return the start epoch."""
        names = self.get_model_names()
        file_missing = any(not osp.exists(osp.join(directory, name, "checkpoint")) for name in names)
        if file_missing or not names:
            print("No checkpoint found, train from scratch")
            return 0
        print(f"Found checkpoint at {directory} (will resume training)")
        start_epoch = 0
        for name in names:
            path = osp.join(directory, name)
            start_epoch = self._resume_one(path, name)
        print(
            f"Resumed from epoch {start_epoch}: training continues at epoch {start_epoch + 1}. "
            "To start from scratch instead, use a new --output-dir."
        )
        return start_epoch

    def _resume_one(self, path: str, name: str) -> int:
        with open(osp.join(path, "checkpoint"), encoding="utf-8") as f:
            fpath = osp.join(path, f.readline().strip())
        print(f'Loading checkpoint from "{fpath}"')
        checkpoint = load_checkpoint(fpath)
        self.check_resume_fingerprint(checkpoint, fpath)
        self.load_model_state_dict(name, checkpoint["state_dict"], strict=True)
        if self._optims[name] is not None and checkpoint.get("optimizer") is not None:
            self._optims[name].load_state_dict(checkpoint["optimizer"])
            print("Loaded optimizer")
        if self._scheds[name] is not None and checkpoint.get("scheduler") is not None:
            self._scheds[name].load_state_dict(checkpoint["scheduler"])
            print("Loaded scheduler")
        self.restore_checkpoint_extras(checkpoint)
        return checkpoint["epoch"]

    def restore_checkpoint_extras(self, checkpoint: dict) -> None:
        """Counterpart of ``checkpoint_extras`` when resuming."""

    def check_resume_fingerprint(self, checkpoint: dict, fpath: str) -> None:
        """Refuse to resume a checkpoint made under another result-determining config (hook; see SimpleTrainer)."""

    def load_model_state_dict(self, name: str, state_dict: dict, strict: bool = True) -> None:
        """Load weights into model ``name`` (trainers that save only trainable tensors override it)."""
        self._models[name].load_state_dict(state_dict, strict=strict)

    def load_model(self, directory: str, epoch: int | None = None) -> None:
        """Load ``model-best.pth.tar`` (or ``model.pth.tar-<epoch>``) of every registered model from ``directory``."""
        if not directory:
            detail("Note that load_model() is skipped as no pretrained model is given")  # zero-shot: nothing to load
            return
        names = self.get_model_names()
        model_file = "model-best.pth.tar"
        if epoch is not None:
            model_file = f"model.pth.tar-{epoch}"
        for name in names:
            model_path = osp.join(directory, name, model_file)
            if not osp.exists(model_path):
                raise CheckpointNotFoundError(
                    f'Model not found at "{model_path}". Check --model-dir and --load-epoch '
                    f"(files there: {sorted(_list_dir(osp.join(directory, name)))})"
                )
            checkpoint = load_checkpoint(model_path)
            state_dict = checkpoint["state_dict"]
            loaded_epoch = checkpoint["epoch"]
            val_result = checkpoint.get("val_result")
            shown = f"{val_result:.1f}" if isinstance(val_result, (int, float)) else val_result
            print(f'Load {model_path} to {name} (epoch={loaded_epoch}, val_result={shown})')
            self.load_model_state_dict(name, state_dict, strict=True)
            self._deployed_epoch = loaded_epoch

    def set_model_mode(self, mode: str = "train", names=None) -> None:
        for name in self.get_model_names(names):
            if mode == "train":
                self._models[name].train()
            elif mode in ("test", "eval"):
                self._models[name].eval()
            else:
                raise KeyError(f"Unknown model mode '{mode}' (use train, eval or test)")

    def update_lr(self, names=None) -> None:
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def detect_anomaly(self, loss: torch.Tensor) -> None:
        """Stop on a non-finite loss with where it happened and what usually fixes it (nothing is saved)."""
        if not torch.isfinite(loss).all():
            where = f"epoch {getattr(self, 'epoch', 0) + 1}/{getattr(self, 'max_epoch', '?')}"
            if hasattr(self, "batch_idx"):
                where += f", batch {self.batch_idx + 1}/{getattr(self, 'num_batches', '?')}"
            raise NonFiniteError(
                f"The loss is {loss.detach().float().flatten()[0].item()} at {where}; the run stopped before the "
                f"update, and the last good checkpoint is kept. {self.non_finite_hint()}"
            )

    def check_finite(self, tensors: dict, what: str) -> None:
        """Raise ``NonFiniteError`` naming the tensors of ``what`` that hold inf or NaN."""
        bad = [k for k, v in tensors.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise NonFiniteError(
                f"Non-finite values in {what} ({shown}); it was not saved, and the last good checkpoint is kept. "
                f"{self.non_finite_hint()}"
            )

    def non_finite_hint(self) -> str:
        """What to try after a non-finite loss; trainers add their own (e.g. the precision)."""
        cfg = getattr(self, "cfg", None)
        lr = f" (now {cfg.OPTIM.LR})" if cfg is not None else ""
        return (
            f"Try a lower OPTIM.LR{lr}. A changed config is a new run: use another --output-dir, or FORCE=1 "
            "(scripts) / --force (train.py)."
        )

    def init_writer(self, log_dir: str) -> None:
        if not is_main_process():
            self._writer = None
            return
        if self.__dict__.get("_writer") is None or self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                detail("Tensorboard is not installed: scalars are not logged (pip install tensorboard)")
                self._writer = None
                return
            detail(f"Initialize tensorboard (log_dir={log_dir})")
            mkdir_if_missing(log_dir)  # only when there is a writer: no empty tensorboard/ folder
            self._writer = SummaryWriter(log_dir=log_dir)

    def close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def write_scalar(self, tag: str, scalar_value, global_step=None) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, scalar_value, global_step)

    def train(self, start_epoch: int, max_epoch: int) -> None:
        """Generic training loop: hooks around every epoch."""
        self.start_epoch = start_epoch
        self.max_epoch = max_epoch
        self.before_train()
        self.stage = "epoch"
        for self.epoch in range(self.start_epoch, self.max_epoch):  # noqa: B020 (Dassl hooks read self.epoch)
            self.before_epoch()
            self.run_epoch()
            self.after_epoch()
            self.announce_epoch()
        if self.max_epoch > 0:
            self.epoch = self.max_epoch - 1  # also when a resumed run had no epoch left to train
        self.stage = "after_train"
        self.after_train()

    def before_train(self) -> None:
        pass

    def announce_epoch(self) -> None:
        """The console's one line per epoch (hook; ``SimpleTrainer`` says the loss and the selection accuracy)."""

    def after_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def run_epoch(self) -> None:
        raise NotImplementedError

    def test(self):
        raise NotImplementedError

    def parse_batch_train(self, batch):
        raise NotImplementedError

    def parse_batch_test(self, batch):
        raise NotImplementedError

    def forward_backward(self, batch):
        raise NotImplementedError

    def model_inference(self, input):
        raise NotImplementedError

    def model_zero_grad(self, names=None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss: torch.Tensor) -> None:
        self.detect_anomaly(loss)
        loss.backward()

    def sync_gradients(self, names=None) -> None:
        """Average the gradients over processes in distributed training (no-op in one process)."""
        if world_size() > 1:
            all_reduce_gradients(p for name in self.get_model_names(names) for p in self._models[name].parameters())

    def broadcast_model_state(self, names=None) -> None:
        """Start every process from the main process's trainable tensors and buffers (random inits differ)."""
        if world_size() > 1:
            for name in self.get_model_names(names):
                model = self._models[name]
                broadcast_from_main([p for p in model.parameters() if p.requires_grad] + list(model.buffers()))

    def model_update(self, names=None) -> None:
        self.sync_gradients(names)
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].step()

    def model_backward_and_update(self, loss: torch.Tensor, names=None) -> None:
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)


def set_sampler_epoch(loader, epoch: int) -> None:
    """A new shuffle per epoch for the distributed sampler (the same on every process)."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def _list_dir(path: str) -> list[str]:
    import os

    return os.listdir(path) if osp.isdir(path) else []


def select_device(cfg) -> torch.device:
    """CUDA when available and ``USE_CUDA``, else the CPU (trainers that need the device before ``__init__``
    finishes, e.g. for their precision, ask the same function)."""
    return torch.device("cuda") if torch.cuda.is_available() and cfg.USE_CUDA else torch.device("cpu")


class SimpleTrainer(TrainerBase):
    """Data loaders, evaluator, best-model selection and results.json on top of TrainerBase.

    What is evaluated on which images against which classes, which epoch is deployed and what goes into
    results.json is the run's ``self.protocol`` (dassl/evaluation/protocol.py); a trainer only says which kind of
    protocol it follows (``PROTOCOL``) and how its model scores a class slice (``class_logits``).
    """

    PROTOCOL = "standard"  # "transductive": trains on unlabeled images of all classes (the PromptKD student)

    def __init__(self, cfg) -> None:
        super().__init__()
        self.check_cfg(cfg)
        self.device = select_device(cfg)

        # Save as attributes some frequently used variables
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR

        self.cfg = cfg
        self.stage = "eval"  # "epoch" inside the training loop, "after_train" for the deployed model's tests
        self.run_folder = RunFolder(cfg.OUTPUT_DIR)
        self._evaluations: list[dict] | None = None  # the record, read or started at the first evaluation
        self.protocol = build_protocol(cfg, type(self).PROTOCOL)  # what is trained, evaluated and reported
        self.build_data_loader()
        self.build_model()
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)
        self.best_result = -np.inf
        self._deployed_epoch: int | None = None
        self._epoch_evals: list[str] = []  # this epoch's evaluations, for the epoch line

    def check_cfg(self, cfg) -> None:
        """Check whether some variables are set correctly for the trainer (hook for subclasses)."""

    def build_data_loader(self) -> None:
        """Create the data loaders (trainers that need custom transforms override this)."""
        dm = DataManager(self.cfg, protocol=self.protocol)
        self.eval_loaders = dm.eval_loaders  # one per named evaluation of the protocol
        self.partition = dm.partition
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = dm.train_loader_u  # optional, can be None
        self.val_loader = dm.val_loader  # optional, can be None
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname  # dict {label: classname}
        self.dm = dm

    def build_model(self) -> None:
        """Build and register the model; every trainer overrides this (the engine has no default model)."""
        raise ModelNotDefinedError(
            f"{type(self).__name__} does not build a model: override build_model() to create the model and register "
            "it with self.register_model(name, model, optim, sched) (see trainers/base.py, PromptTrainer, for the "
            "CLIP prompt-learning trainers)."
        )

    def train(self) -> None:
        super().train(self.start_epoch, self.max_epoch)

    def before_train(self) -> None:
        directory = self.cfg.OUTPUT_DIR
        if self.cfg.RESUME:
            directory = self.cfg.RESUME
        self.start_epoch = self.resume_model_if_exist(directory)
        self.broadcast_model_state()
        if is_main_process():
            self.rollback_record(self.start_epoch)

        # Initialize summary writer
        self.init_writer(osp.join(self.output_dir, "tensorboard"))

        # Remember the starting time (for computing the elapsed time)
        self.time_start = time.time()

    def after_train(self) -> None:
        print("Finish training")
        do_test = not self.cfg.TEST.NO_TEST and is_main_process()  # the other processes have nothing to report
        if do_test:
            if self.protocol.selection is not None:
                for evaluation in self.protocol.last_epoch:  # reported next to the selected model
                    what = {"accuracy": "Accuracy"}.get(evaluation.role, f"{evaluation.role.capitalize()} accuracy")
                    print(f"{what} of the last-epoch model (reported next to the selected one)")
                    self.evaluate(evaluation)
                print("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                print("Deploy the last-epoch model")
                self._deployed_epoch = self.max_epoch
            self.test()

        # Show elapsed time
        elapsed = round(time.time() - self.time_start)
        elapsed = str(datetime.timedelta(seconds=elapsed))
        print(f"Elapsed: {elapsed}")

        # Close writer
        self.close_writer()

    def after_epoch(self) -> None:
        """Evaluate for selection, then write the epoch's files; ``model-last`` (the resume point) comes last.

        So a kill anywhere leaves the previous epoch's ``model-last`` as the resume point, and the rerun repeats this
        epoch bit-identically, rewriting the same ``model-best`` / ``model.pth.tar-N`` files.
        """
        self.check_finite(self.trainable_state(), f"the trainable tensors after epoch {self.epoch + 1}")
        last_epoch = (self.epoch + 1) == self.max_epoch
        do_test = not self.cfg.TEST.NO_TEST
        meet_checkpoint_freq = (
            (self.epoch + 1) % self.cfg.TRAIN.CHECKPOINT_FREQ == 0 if self.cfg.TRAIN.CHECKPOINT_FREQ > 0 else False
        )
        save_last = self.cfg.TRAIN.SAVE_LAST

        if do_test and self.protocol.selection is not None:
            curr_result = self.test(split="val")
            is_best = curr_result > self.best_result
            if is_best:
                self.best_result = curr_result
                self.save_model(
                    self.epoch, self.output_dir, val_result=curr_result, model_name="model-best.pth.tar",
                    update_pointer=False,
                )  # fmt: skip

        if meet_checkpoint_freq or last_epoch:
            self.save_model(self.epoch, self.output_dir, update_pointer=not save_last)
        if save_last:
            self.save_model(self.epoch, self.output_dir, model_name="model-last.pth.tar")

    def trainable_state(self) -> dict:
        """The tensors a checkpoint holds, for every registered model (``<name>.<key>``)."""
        return {f"{name}.{k}": v for name in self.get_model_names() for k, v in self.model_state_dict(name).items()}

    def checkpoint_extras(self) -> dict:
        best = self.best_result
        return {
            "rng_state": get_rng_state(),
            "best_result": None if best is None or not np.isfinite(best) else float(best),
            "fingerprint": config_fingerprint(self.cfg),
        }

    def check_resume_fingerprint(self, checkpoint: dict, fpath: str) -> None:
        stored = checkpoint.get("fingerprint")
        if stored is None:
            return  # written by an older version or upstream: run.json (train.py) has checked the folder
        differences = describe_differences(stored, config_fingerprint(self.cfg))
        if differences:
            shown = "\n  ".join(differences[:20])
            raise RunStateError(
                f"{fpath} was trained with another config; resuming it would label its numbers with settings they "
                f"were not made with. Differences (checkpoint -> this run):\n  {shown}\nEither give this run another "
                "--output-dir (and no --resume), or use FORCE=1 (scripts) / --force (train.py) to start afresh."
            )

    def restore_checkpoint_extras(self, checkpoint: dict) -> None:
        if checkpoint.get("rng_state") is not None:
            set_rng_state(checkpoint["rng_state"])
            print("Restored the random number generator states")
        if checkpoint.get("best_result") is not None:
            self.best_result = checkpoint["best_result"]

    @torch.no_grad()
    def test(self, split: str | None = None):
        """Dassl's entry point. ``test()``: the deployed model's evaluations of the protocol (returns the main test's
        first metric); ``test("val")``: the selection evaluation; ``test(name)``: that evaluation."""
        if split is None:
            return self.run_final_evaluations()
        return self.evaluate(self.protocol.for_split(split))

    def run_final_evaluations(self) -> float:
        """Every ``final`` evaluation of the protocol on the deployed model, the main test last. One that equals
        the selection evaluation at the deployed epoch (parity mode, ``same_as``) is taken from the record."""
        result = float("nan")
        for evaluation in self.protocol.finals:
            if evaluation.same_as and self._recorded_at_deployed_epoch(evaluation.same_as):
                continue
            result = self.evaluate(evaluation, final=True)
        return result

    def _recorded_at_deployed_epoch(self, split: str) -> bool:
        return any(
            e.get("split") == split and e.get("stage") == "epoch" and e.get("epoch") == self._deployed_epoch
            for e in self._evaluations or []
        )

    def class_logits(self, input: torch.Tensor, columns: slice | None) -> torch.Tensor:
        """Logits against the protocol's class slice ``columns`` of the model's classes (None: all of them).

        Default: the model's logits, column-sliced; a model with a class-vector classifier slices its classifier
        instead (the same numbers, without the other classes' products)."""
        output = self.model_inference(input)
        return output if columns is None else output[:, columns]

    @torch.no_grad()
    def evaluate(self, evaluation: Evaluation, final: bool = False, epoch: int | None = None):
        """Run the model over the images of ``evaluation``, print Dassl's result block and record it.

        ``final``: the deployed model's test (``results.json``'s "final"); ``epoch`` overrides the recorded epoch.
        In distributed training only the main process evaluates (the others return NaN and never save a best model).
        """
        if not is_main_process():
            return float("nan")
        split = evaluation.split
        data_loader = self.eval_loaders.get(evaluation.name)
        if data_loader is None:
            raise ConfigError(f"{self.cfg.DATASET.NAME} has no {evaluation.images} images for the evaluation "
                              f"'{evaluation.name}' ({self.describe_split(split)})")  # fmt: skip
        columns = self.protocol.columns(self.partition, evaluation)
        self.set_model_mode("eval")
        self.evaluator.reset()
        what = evaluation.describe(self.protocol)
        detail(f"Evaluate on the *{split}* set")  # upstream's line, which log parsers look for
        print(f"Evaluate: {what}")

        bar = tqdm(data_loader, desc=f"eval {split}", leave=False, disable=None, file=console_stream())  # terminal only
        for batch in bar:
            input, label = self.parse_batch_test(batch)
            output = self.class_logits(input, columns)
            self.evaluator.process(output, label)

        results = self.evaluator.evaluate()

        for k, v in results.items():
            tag = f"{split}/{k}"
            self.write_scalar(tag, v, self.epoch)

        self.record_result(split, results, final=final, num_samples=len(data_loader.dataset), epoch=epoch)
        first = list(results.values())[0]
        if final or evaluation.role != "selection":
            shown = self._deployed_epoch if final or epoch is not None else self.epoch + 1
            model = "deployed model" if final else "model"
            announce(f"{what}, {model}{f' of epoch {shown}' if shown else ''}: {_metric_text(results)}")
        else:
            self._epoch_evals.append(f"{what}: {_metric_text(results)}")
        return first

    def describe_split(self, split: str) -> str:
        """What the evaluation recorded as ``split`` measures, in words."""
        for evaluation in self.protocol.evaluations:
            if evaluation.split == split:
                return evaluation.describe(self.protocol)
        return f"{split} images"

    def announce_epoch(self) -> None:
        losses = self.__dict__.pop("_epoch_losses", None)
        evals = self.__dict__.get("_epoch_evals", [])
        text = f"epoch {self.epoch + 1}/{self.max_epoch}"
        if losses is not None and losses.meters:
            text += ": " + ", ".join(f"{'train acc' if name == 'acc' else name} {meter.avg:.4g}"
                                     for name, meter in losses.meters.items())  # fmt: skip
        announce(" | ".join([text, *evals]))
        evals.clear()

    def rollback_record(self, start_epoch: int) -> None:
        """Keep the evaluations that the resumed state has made (its epochs), drop the rest: the epochs after it are
        trained and evaluated again. Also removes temp files of writes a kill interrupted."""
        for path in self.run_folder.remove_stale_temp_files():
            print(f"Removed the temp file of an interrupted write: {path}")
        had_record = osp.exists(self.run_folder.record_path)
        self._evaluations = self.run_folder.rollback(
            lambda e: e.get("stage") == "epoch" and (e.get("epoch") or 0) <= start_epoch
        )
        if had_record or osp.exists(osp.join(self.output_dir, "results.json")):
            self.write_results()

    def record_result(
        self, split: str, results: dict, final: bool = False, num_samples: int | None = None, epoch: int | None = None
    ) -> None:
        """Append one evaluation durably to the run's record (``evaluations.jsonl``), then rewrite
        ``results.json`` (the machine-readable twin of log.txt) from the whole record."""
        if epoch is None:
            epoch = self._deployed_epoch if final else self.epoch + 1
        entry = {
            "split": split,
            "epoch": epoch,
            "num_samples": num_samples,
            "stage": self.stage,
            "final": bool(final),
        }
        entry.update({k: _to_jsonable(v) for k, v in results.items()})
        if self._evaluations is None:  # an evaluation outside training (eval-only): a record of its own
            self._evaluations = self.run_folder.rewrite_record([])
        self.run_folder.append(entry)
        self._evaluations.append(entry)
        fault_point("evaluation-recorded")
        self.write_results()

    def write_results(self) -> None:
        """``results.json``: derived from the record alone, so a resumed run writes what an uninterrupted one does."""
        evaluations = list(self._evaluations or [])
        main = [e for e in evaluations if e.get("final") and e.get("split") == self.protocol.main]
        fingerprint = config_fingerprint(self.cfg)
        payload = {
            "schema_version": SCHEMA_VERSION,
            "trainer": self.cfg.TRAINER.NAME,
            "dataset": self.cfg.DATASET.NAME,
            "seed": self.cfg.SEED,
            "num_shots": self.cfg.DATASET.NUM_SHOTS,
            "subsample_classes": self.cfg.DATASET.get("SUBSAMPLE_CLASSES", "all"),
            "backbone": self.cfg.MODEL.BACKBONE.NAME,
            "final_model": self.cfg.TEST.FINAL_MODEL,
            # the result-determining config (the run folder's fingerprint): the same for a rerun in another folder
            "config_hash": hashlib.sha256(
                json.dumps(fingerprint, sort_keys=True, default=str).encode("utf-8")
            ).hexdigest()[:16],
            "experiment": {
                "name": self.cfg.get("EXPERIMENT", "") or self.cfg.TRAINER.NAME,
                "config_id": experiment_config_id(fingerprint),
            },
            "protocol": self.protocol.describe(),
            "finished": bool(main),
            "evaluations": evaluations,
        }
        if self.protocol.modal:
            payload["modal"] = self.protocol.modal
        if main:
            payload["final"] = main[-1]
        payload.update(summarize(self.protocol, evaluations))
        payload.update(self.results_extras())
        payload["backbones"] = getattr(self, "loaded_backbones", {})
        check_results(payload, "results.json being written")  # a bug here must not write an unreadable file
        write_json(payload, osp.join(self.output_dir, "results.json"))

    def results_extras(self) -> dict:
        """Method-specific top-level entries of results.json (e.g. the teacher a student was distilled from)."""
        return {}

    def parse_batch_test(self, batch):
        input = batch["img"].to(self.device)
        label = batch["label"].to(self.device)
        return input, label

    def get_current_lr(self, names=None) -> float:
        names = self.get_model_names(names)
        name = names[0]
        return self._optims[name].param_groups[0]["lr"]

    def model_inference(self, input):
        return self.model(input)


def _metric_text(results: dict) -> str:
    """``accuracy 45.83%`` (the first metric, as the selection uses it)."""
    name, value = next(iter(results.items()))
    return f"{name} {value:.2f}%" if isinstance(value, (int, float)) else f"{name} {value}"


def _to_jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    return value


class TrainerX(SimpleTrainer):
    """A trainer over labeled data only (one pass over ``train_loader_x`` per epoch)."""

    def run_epoch(self) -> None:
        self.set_model_mode("train")
        losses = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()
        self.num_batches = len(self.train_loader_x)
        set_sampler_epoch(self.train_loader_x, self.epoch)

        end = time.time()
        progress = self._progress_bar(self.num_batches)
        for self.batch_idx, batch in enumerate(self.train_loader_x):  # noqa: B020
            progress.update()
            data_time.update(time.time() - end)
            loss_summary = self.forward_backward(batch)
            fault_point("batch")
            batch_time.update(time.time() - end)
            losses.update(loss_summary)

            self._print_progress(losses, batch_time, data_time)

            n_iter = self.epoch * self.num_batches + self.batch_idx
            for name, meter in losses.meters.items():
                self.write_scalar("train/" + name, meter.avg, n_iter)
            self.write_scalar("train/lr", self.get_current_lr(), n_iter)

            end = time.time()
        progress.close()
        self._epoch_losses = losses

    def _progress_bar(self, total: int) -> tqdm:
        """A transient bar on the console's stderr in an interactive terminal (never in log.txt)."""
        disable = None if is_main_process() else True
        return tqdm(total=total, desc=f"epoch {self.epoch + 1}/{self.max_epoch}", leave=False, disable=disable,
                    file=console_stream())  # fmt: skip

    def _print_progress(self, losses: MetricMeter, batch_time: AverageMeter, data_time: AverageMeter) -> None:
        """Dassl's per-batch line: printed every ``TRAIN.PRINT_FREQ`` batches; when an epoch has fewer batches
        than that, upstream prints every batch: those lines go to log.txt only (the console has the epoch line).
        """
        meet_freq = (self.batch_idx + 1) % self.cfg.TRAIN.PRINT_FREQ == 0
        only_few_batches = self.num_batches < self.cfg.TRAIN.PRINT_FREQ
        if not (meet_freq or only_few_batches):
            return
        nb_remain = 0
        nb_remain += self.num_batches - self.batch_idx - 1
        nb_remain += (self.max_epoch - self.epoch - 1) * self.num_batches
        eta_seconds = batch_time.avg * nb_remain
        eta = str(datetime.timedelta(seconds=int(eta_seconds)))
        info = [
            f"epoch [{self.epoch + 1}/{self.max_epoch}]",
            f"batch [{self.batch_idx + 1}/{self.num_batches}]",
            f"time {batch_time.val:.3f} ({batch_time.avg:.3f})",
            f"data {data_time.val:.3f} ({data_time.avg:.3f})",
            f"{losses}",
            f"lr {self.get_current_lr():.4e}",
            f"eta {eta}",
        ]
        (print if meet_freq else detail)(" ".join(info))

    def parse_batch_train(self, batch):
        input = batch["img"].to(self.device)
        label = batch["label"].to(self.device)
        domain = batch["domain"].to(self.device)
        return input, label, domain
