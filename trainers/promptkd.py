"""PromptKD: "Unsupervised Prompt Distillation for Vision-Language Models" (Li et al., CVPR 2024).

One idea: distil a large prompted teacher (PromptSRC on ViT-L/14) into a small student (ViT-B/16 with deep visual
prompts + a projector) on *unlabeled* images, with the teacher's text features of all classes ("class vectors",
computed once) as the shared classifier, so the student needs no text encoder at all.

    student_logits = s * norm(P(f_student(x))) @ W.T        teacher_logits = t * norm(f_teacher(x)) @ W.T
    kd_loss = KD_WEIGHT * T^2 * sum KL(p_teacher || p_student) / (B * N)        (labels are never used)

Deliberate differences (DESIGN §4): W is computed once after the teacher is loaded (bit-identical to upstream's
per-step recomputation) and cached on disk; the student's eval never runs the teacher; PROJECT_LAYER is honoured;
the teacher's design is read from its checkpoint. Checkpoint key mapping to upstream: ``upstream_key_map``.
"""

from __future__ import annotations

import math
import os
import os.path as osp

import torch
import torch.nn as nn
import torch.nn.functional as F

from dassl.data import build_data_loader
from dassl.data.transforms import build_transform
from dassl.engine import TRAINER_REGISTRY
from dassl.utils.torchtools import preserved_rng_state

from .backbone import resolve_clip_checkpoint
from .base import PromptTrainer
from .prompting import DeepPrompts, VisionPromptHooks, freeze_all_but
from .teacher import (
    FrozenTeacher,
    TeacherCheckpointError,
    build_teacher,
    cached_class_vectors,
    class_vector_cache_key,
    read_teacher_state,
    resolve_teacher_checkpoint,
    teacher_classnames,
    teacher_record,
)
from .teacher_bank import open_teacher_bank, uses_views, view_train_loader


def build_projector(in_dim: int, out_dim: int, layers: int) -> nn.Sequential:
    """The student's projector: 1 = Linear; 2 = Linear-BN-ReLU-Linear (upstream); 3 = two BN-ReLU blocks + Linear."""
    if layers not in (1, 2, 3):
        raise ValueError(f"TRAINER.PROMPTKD.PROJECT_LAYER must be 1, 2 or 3, got {layers}")
    modules: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        modules += [nn.Linear(dim, out_dim), nn.BatchNorm1d(out_dim), nn.ReLU(inplace=True)]
        dim = out_dim
    modules.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*modules)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, weight: float) -> dict:
    """KD_WEIGHT * T^2 * sum_{b,c} KL(p_teacher || p_student) / (B * N), as upstream (not batchmean)."""
    kl_div_sum = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.softmax(teacher_logits / temperature, dim=1),
        reduction="sum",
    )
    l_ukd = kl_div_sum * temperature * temperature / student_logits.numel()
    return {"kl_div_sum": kl_div_sum, "L_ukd": l_ukd, "loss": weight * l_ukd}


class PromptKDStudent(nn.Module):
    """Frozen CLIP image encoder + deep visual prompts + projector into the teacher's embedding space."""

    def __init__(self, clip_model: nn.Module, n_ctx: int, depth: int, out_dim: int, project_layers: int) -> None:
        super().__init__()
        width = clip_model.visual.conv1.weight.shape[0]
        embed_dim = clip_model.visual.proj.shape[1]
        self.image_encoder = clip_model.visual
        self.vision_prompts = DeepPrompts(n_ctx, width, depth, first_layer=0)
        self.projector = build_projector(embed_dim, out_dim, project_layers)
        self.logit_scale = clip_model.logit_scale
        self._vision_hooks = VisionPromptHooks(clip_model.visual, depth)
        self.depth = depth

    def trainable_modules(self) -> list[nn.Module]:
        return [self.vision_prompts, self.projector]

    def visual_features(self, image: torch.Tensor) -> torch.Tensor:
        """The prompted visual output (batch, 512), before the projector."""
        with self._vision_hooks.prompts(self.vision_prompts.as_dict()):
            return self.image_encoder(image.to(self.image_encoder.conv1.weight.dtype))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Projected, L2-normalised student features (batch, out_dim)."""
        return F.normalize(self.projector(self.visual_features(image).float()), dim=-1)

    def upstream_key_map(self) -> dict[str, str]:
        """{upstream key: our key}; upstream's 1x1 convs are our Linear layers (weights reshaped)."""
        mapping = {}
        for i in range(self.depth):
            upstream = "image_encoder.VPT" if i == 0 else f"image_encoder.transformer.resblocks.{i}.VPT_shallow"
            mapping[upstream] = f"vision_prompts.prompts.layer{i}"
        for name, _ in self.projector.named_parameters():
            mapping[f"VPT_image_trans.conv1.{name}"] = f"projector.{name}"
        for name, _ in self.projector.named_buffers():
            mapping[f"VPT_image_trans.conv1.{name}"] = f"projector.{name}"
        return mapping


def default_teacher_checkpoint(cfg) -> str:
    """Upstream's path pattern, relative to the working directory."""
    if cfg.TRAINER.MODAL == "cross":
        return osp.join("teacher_model", "ImageNet-xd", "VLPromptLearner_large", "model.pth.tar-20")
    return osp.join("teacher_model", cfg.DATASET.NAME, "VLPromptLearner", "model-best.pth.tar")


@TRAINER_REGISTRY.register()
class PromptKD(PromptTrainer):
    CONFIG_NODE = "PROMPTKD"
    MODEL_NAME = "VLPromptLearner"

    def build_data_loader(self) -> None:
        """Dassl's loaders; with a teacher bank (or ``VIEWS_AS_DATA``) the train loader serves views as data."""
        super().build_data_loader()
        if uses_views(self.cfg):
            self.train_loader_x = view_train_loader(self.cfg, self.dm.dataset.train_x)

    def build_model(self) -> None:
        cfg, kd = self.cfg, self.cfg.TRAINER.PROMPTKD
        classnames = self.dm.dataset.classnames

        # the teacher: frozen, eval mode, not registered (never saved, never optimised). Its class vectors are
        # computed once and cached; with a cache hit the teacher is only built when training starts.
        self.teacher_ckpt = resolve_teacher_checkpoint(kd.TEACHER_CKPT or default_teacher_checkpoint(cfg))
        self.teacher_record = teacher_record(self.teacher_ckpt)
        if self.teacher_record:
            r = self.teacher_record
            print(f"Teacher's own test accuracy: {r['accuracy']:.2f}% on the {r['classes']} classes of {r['dataset']} "
                  f"(epoch {r['epoch']}, {r['results']})")  # fmt: skip
        else:
            print("Teacher's own accuracy unknown (no results.json next to its checkpoint folder)")
        self.n_base = math.ceil(len(classnames) / 2)
        self.check_teacher_classes(classnames)
        self.teacher = None
        cache_dir = kd.CLASS_VECTOR_CACHE or os.environ.get("PROMPTKD_CACHE_DIR", "~/.cache/promptkd")
        teacher_clip = resolve_clip_checkpoint(
            kd.TEACHER_NAME, kd.TEACHER_BACKBONE_PATH, path_key="TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH"
        )
        key = class_vector_cache_key(
            self.teacher_ckpt, classnames, kd.TEACHER_NAME, kd.CTX_INIT,
            backbone_file=teacher_clip, precision=kd.PREC, device=self.device.type,
        )  # fmt: skip
        cached = cached_class_vectors(None, cache_dir, key)
        if cached is None:
            # the teacher is built here on a cold cache and only when training starts on a warm one: built outside
            # the random streams, so the student's initialisation (and every number) is the same either way
            with preserved_rng_state():
                self.teacher = self.build_teacher()
                cached = cached_class_vectors(self.teacher, cache_dir, key)
        self.class_vectors = cached.to(self.device)  # (n_cls, d_teacher)

        student_clip = self.load_backbone()
        model = PromptKDStudent(
            student_clip, kd.N_CTX_VISION, kd.PROMPT_DEPTH_VISION, self.class_vectors.shape[1], kd.PROJECT_LAYER
        )
        freeze_all_but(model, model.trainable_modules())
        self.register_prompt_model(model)
        if self.teacher is not None:
            self.precision.cast_frozen(self.teacher)
        self._eval_split = "test"

    def check_teacher_classes(self, classnames: list[str]) -> None:
        """In base2novel the teacher must have been trained on this dataset's base (or all) classes."""
        if self.cfg.TRAINER.MODAL != "base2novel":
            return  # cross-dataset: a teacher of another dataset (ImageNet) is the point
        trained_on = teacher_classnames(self.teacher_ckpt)
        dataset = (self.teacher_record or {}).get("dataset")
        fits = trained_on is None or trained_on in (classnames[: self.n_base], list(classnames))
        if fits and (dataset is None or dataset == self.cfg.DATASET.NAME):
            return
        what = f"{len(trained_on)} classes ({', '.join(trained_on[:3])}, ...)" if trained_on else "another dataset"
        raise TeacherCheckpointError(
            f"The teacher {self.teacher_ckpt} was trained on {what}"
            f"{f' of {dataset}' if dataset else ''}, but this base-to-novel student distils {self.cfg.DATASET.NAME} "
            f"({len(classnames)} classes, base: {', '.join(classnames[:3])}, ...). Point TRAINER.PROMPTKD.TEACHER_CKPT "
            f"at a teacher trained on {self.cfg.DATASET.NAME} (scripts/promptsrc/base2new_train_teacher.sh), or set "
            "TRAINER.MODAL cross for a cross-dataset teacher."
        )

    def build_teacher(self) -> FrozenTeacher:
        kd = self.cfg.TRAINER.PROMPTKD
        state = read_teacher_state(self.teacher_ckpt)
        clip_model = self.load_backbone(kd.TEACHER_NAME, kd.TEACHER_BACKBONE_PATH, "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH")
        teacher = build_teacher(clip_model, self.dm.dataset.classnames, state, kd.CTX_INIT).to(self.device)
        if hasattr(self, "precision"):
            self.precision.cast_frozen(teacher)
        return teacher

    # ------------------------------------------------------------------ training

    def parse_batch_train(self, batch):
        image, label = super().parse_batch_train(batch)
        bank = getattr(self, "bank", None)  # the teacher's features of these views, read instead of computed
        self._bank_features = None
        if bank is not None:
            features = bank.features(batch["index"], batch["view"], batch["view_params"])
            self._bank_features = features.to(self.device, non_blocking=True)
        return image, label

    def compute_loss(self, image, label):
        kd = self.cfg.TRAINER.PROMPTKD
        with torch.no_grad():
            bank_features = getattr(self, "_bank_features", None)
            if bank_features is not None:  # (batch, d_teacher), the teacher's normalised features of these views
                teacher_logits = self.bank.logit_scale * bank_features @ self.class_vectors.t()
            else:
                teacher_logits = self.teacher.logit_scale * self.teacher.image_features(image) @ self.class_vectors.t()
        student_logits = self.model.logit_scale.exp().float() * self.model(image) @ self.class_vectors.t()
        terms = kd_loss(student_logits.float(), teacher_logits.float(), kd.TEMPERATURE, kd.KD_WEIGHT)
        return terms["loss"], {"loss": terms["loss"].item()}

    # ------------------------------------------------------------------ evaluation: the student alone

    def eval_class_vectors(self, split: str) -> torch.Tensor:
        """Base classes for "val", novel classes for "test" in base2novel (upstream's slices); all in cross."""
        if self.cfg.TRAINER.MODAL == "base2novel" and self.dm.dataset.num_classes == len(self.class_vectors):
            return self.class_vectors[: self.n_base] if split == "val" else self.class_vectors[self.n_base :]
        return self.class_vectors

    @property
    def upstream_selection(self) -> bool:
        """Parity mode: the best epoch on the base-class test images, whose accuracy is then the base number."""
        return self.cfg.DATASET.VAL_SOURCE == "test" and self.cfg.TEST.FINAL_MODEL == "best_val"

    def describe_split(self, split: str) -> str:
        """In base2novel, "val" is the base classes' selection split and "test" the novel classes' test images."""
        if self.cfg.TRAINER.MODAL != "base2novel":
            return super().describe_split(split)
        parity = self.cfg.DATASET.VAL_SOURCE == "test"
        selection = "base-class test images (as the original)" if parity else "base-class val images"
        names = {"val": f"selection split: {selection}", "test": "novel-class test images",
                 "test_base": "base-class test images"}  # fmt: skip
        return names.get(split, super().describe_split(split))

    def test(self, split: str | None = None):
        effective = split if split is not None else self.cfg.TEST.SPLIT
        if effective == "val" and self.val_loader is None:
            effective = "test"
        eval_only = getattr(self, "_eval_only", False)
        if split is None and self.cfg.TRAINER.MODAL == "base2novel":
            self._eval_only = False
            if not self.upstream_selection and self.dm.dataset.test_base:
                self.test_base()  # the deployed model on the base-class test images
            elif eval_only and self.val_loader is not None:
                self.test("val")  # eval-only: report base accuracy as well (val = base test images)
        self._eval_split = effective
        return super().test(split)

    def test_base(self) -> float:
        """Base accuracy of the deployed model on the base-class test images (recorded as split ``test_base``).

        Needed when the model is selected on the json val split or taken from the last epoch: then the per-epoch
        "val" results are not test accuracies (or do not exist).
        """
        dataset = self.dm.dataset
        loader = build_data_loader(
            self.cfg, sampler_type=self.cfg.DATALOADER.TEST.SAMPLER, data_source=dataset.test_base,
            batch_size=self.cfg.DATALOADER.TEST.BATCH_SIZE, tfm=build_transform(self.cfg, is_train=False),
            is_train=False,
        )  # fmt: skip
        self._eval_split = "val"  # the base-class slice of the class vectors
        return self.evaluate(loader, "test_base", epoch=self._deployed_epoch)

    @torch.no_grad()
    def model_inference(self, image: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            features = self.model(image)
        return self.model.logit_scale.exp().float() * features.float() @ self.eval_class_vectors(self._eval_split).t()

    def load_model(self, directory: str, epoch: int | None = None) -> None:
        super().load_model(directory, epoch)
        self._eval_only = bool(directory) and not getattr(self, "_training", False)

    def before_train(self) -> None:
        self._training = True
        self.prepare_teacher()
        super().before_train()

    def prepare_teacher(self) -> None:
        """The teacher for training; with ``TEACHER_BANK`` the bank instead (the teacher runs only to build it)."""
        if self.cfg.TRAINER.PROMPTKD.TEACHER_BANK:
            self.bank = open_teacher_bank(self)
            self.teacher = None
        elif self.teacher is None:
            with preserved_rng_state():
                self.teacher = self.build_teacher()

    def after_train(self) -> None:
        if not self.cfg.TEST.NO_TEST and self.cfg.TEST.FINAL_MODEL == "best_val":
            what = "Novel accuracy" if self.cfg.TRAINER.MODAL == "base2novel" else "Accuracy"
            print(f"{what} of the last-epoch model (reported next to the selected one)")
            self.test("test")
        super().after_train()

    def results_summary(self, evaluations: list[dict]) -> dict:
        finals = [e for e in evaluations if e.get("final")][-1:]
        vals = [e for e in evaluations if e["split"] == "val"]
        tests = [e for e in evaluations if e["split"] == "test" and not e.get("final")]
        summary: dict = {
            "modal": self.cfg.TRAINER.MODAL,
            "teacher": {"checkpoint": self.teacher_ckpt, **(self.teacher_record or {})},
            "selection": {
                "rule": self.cfg.TEST.FINAL_MODEL,
                "split": "json val split" if self.cfg.DATASET.VAL_SOURCE == "val" else "test split (upstream parity)",
            },
        }
        if self.cfg.TRAINER.MODAL != "base2novel":
            if finals:
                summary["accuracy"] = {"accuracy": finals[0]["accuracy"], "epoch": finals[0]["epoch"]}
            return summary
        test_base = [e for e in evaluations if e["split"] == "test_base"]
        if finals:
            epoch = finals[0]["epoch"]
            selected = [v for v in vals if v["epoch"] == epoch]
            if selected and self.cfg.TEST.FINAL_MODEL == "best_val":
                summary["selection"]["accuracy"] = selected[-1]["accuracy"]  # on the selection split
            base = test_base[-1:] or selected or vals[-1:]
            summary["novel"] = {"accuracy": finals[0]["accuracy"], "epoch": epoch}
            if base:
                summary["base"] = {"accuracy": base[-1]["accuracy"], "epoch": base[-1]["epoch"]}
                b, n = summary["base"]["accuracy"], summary["novel"]["accuracy"]
                summary["hm"] = 2 * b * n / (b + n) if b + n > 0 else 0.0
        if vals and self.cfg.DATASET.VAL_SOURCE == "test":  # "val" = base-class test images
            summary["base_last"] = {"accuracy": vals[-1]["accuracy"], "epoch": vals[-1]["epoch"]}
        if tests:
            summary["novel_last"] = {"accuracy": tests[-1]["accuracy"], "epoch": tests[-1]["epoch"]}
        return summary
