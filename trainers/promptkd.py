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

import os
import os.path as osp

import torch
import torch.nn as nn
import torch.nn.functional as F

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
    """Upstream's path pattern, relative to the working directory (TRAINER.MODAL picks the cross-dataset teacher)."""
    if cfg.TRAINER.MODAL == "cross":
        return osp.join("teacher_model", "ImageNet-xd", "VLPromptLearner_large", "model.pth.tar-20")
    return osp.join("teacher_model", cfg.DATASET.NAME, "VLPromptLearner", "model-best.pth.tar")


@TRAINER_REGISTRY.register()
class PromptKD(PromptTrainer):
    PROTOCOL = "transductive"  # distils on the unlabeled train images of all classes (dassl/evaluation/protocol.py)
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

    def check_teacher_classes(self, classnames: list[str]) -> None:
        """In base2novel the teacher must have been trained on this dataset's base (or all) classes."""
        if self.protocol.modal != "base2novel":
            return  # cross-dataset: a teacher of another dataset (ImageNet) is the point
        trained_on = teacher_classnames(self.teacher_ckpt)
        dataset = (self.teacher_record or {}).get("dataset")
        fits = trained_on is None or trained_on in (classnames[: self.partition.num_base], list(classnames))
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

    @torch.no_grad()
    def class_logits(self, image: torch.Tensor, columns: slice | None) -> torch.Tensor:
        """The student's logits against the class vectors of the protocol's class slice (base / novel / all)."""
        class_vectors = self.class_vectors if columns is None else self.class_vectors[columns]
        with self.precision.autocast():
            features = self.model(image)
        return self.model.logit_scale.exp().float() * features.float() @ class_vectors.t()

    @torch.no_grad()
    def model_inference(self, image: torch.Tensor) -> torch.Tensor:
        return self.class_logits(image, None)

    def before_train(self) -> None:
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

    def results_extras(self) -> dict:
        """The teacher the student was distilled from (its checkpoint and what its own run recorded)."""
        return {"teacher": {"checkpoint": self.teacher_ckpt, **(self.teacher_record or {})}}
