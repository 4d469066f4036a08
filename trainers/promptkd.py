"""PromptKD: "Unsupervised Prompt Distillation for Vision-Language Models" (Li et al., CVPR 2024).

One idea: distil a large prompted teacher (PromptSRC on ViT-L/14) into a small student (ViT-B/16 with deep visual
prompts + a projector) on *unlabeled* images, with the teacher's text features of all classes ("class vectors",
computed once) as the shared classifier, so the student needs no text encoder at all.

    student_logits = s * norm(P(f_student(x))) @ W.T        teacher_logits = t * norm(f_teacher(x)) @ W.T
    kd_loss = KD_WEIGHT * T^2 * sum KL(p_teacher || p_student) / (B * N)        (labels are never used)

Deliberate differences (docs/design.md#promptkd): W is computed once after the teacher is loaded (bit-identical to upstream's
per-step recomputation) and cached on disk; the student's eval never runs the teacher; PROJECT_LAYER is honoured;
the teacher's design is read from its checkpoint. Checkpoint key mapping to upstream: ``upstream_key_map``.
"""

from __future__ import annotations

import os
import os.path as osp

import torch
import torch.nn as nn
import torch.nn.functional as F
from yacs.config import CfgNode

from dassl.engine import TRAINER_REGISTRY
from dassl.utils.torchtools import preserved_rng_state

from .backbone import clip_file_sha256, resolve_clip_checkpoint
from .base import PromptTrainer
from .prompting import DeepPrompts, VisionPromptHooks, freeze_all_but
from .student_model import build_projector  # one definition: the exported student uses it too
from .student_record import RECORD_FORMAT, RECORD_KEY, class_vectors_for
from .teacher import (
    TEACHER_KINDS,
    FrozenTeacher,
    PlainTeacher,
    TeacherCheckpointError,
    build_teacher,
    cached_class_vectors,
    class_vector_cache_key,
    plain_cache_key,
    read_teacher_state,
    resolve_teacher_checkpoint,
    teacher_classnames,
    teacher_record,
    teacher_templates,
)
from .teacher_bank import open_teacher_bank, uses_views, view_train_loader


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

    @classmethod
    def node_defaults(cls) -> CfgNode:
        return CfgNode(
            {
                "N_CTX_VISION": 4,
                "N_CTX_TEXT": 4,
                "CTX_INIT": "a photo of a",
                "PREC": "fp16",
                "PROMPT_DEPTH_VISION": 9,
                "PROMPT_DEPTH_TEXT": 9,
                "PROJECT_LAYER": 2,  # projector depth (upstream ignores it and always builds 2)
                "CE_WEIGHT": 0.0,  # declared upstream, never read
                "KD_WEIGHT": 1.0,
                "TEMPERATURE": 1.0,
                # Upstream's default is the typo "ViT/L-14"; every upstream yaml sets "ViT-L/14", our default
                "TEACHER_NAME": "ViT-L/14",
                # Where the teacher's CLIP weights are (empty: the CLIP cache dir, see trainers/backbone.py)
                "TEACHER_BACKBONE_PATH": "",
                # The teacher's PromptSRC checkpoint (ours or upstream's); empty = upstream's path pattern
                # (teacher_model/<DATASET.NAME>/VLPromptLearner/model-best.pth.tar; cross: ImageNet-xd/...)
                "TEACHER_CKPT": "",
                # Where the teacher's class vectors are cached (empty = $PROMPTKD_CACHE_DIR or ~/.cache/promptkd)
                "CLASS_VECTOR_CACHE": "",
                # Ours: a saved student (run folder or checkpoint) whose own class vectors are used when its class
                # names are this dataset's, so no teacher file or cache is needed; train.py sets it to --model-dir
                # with --eval-only
                "CLASS_VECTORS_FROM": "",
                # Ours: "promptsrc" = a prompted PromptSRC teacher (TEACHER_CKPT); "plain" = the unprompted CLIP
                # TEACHER_NAME (TEACHER_BACKBONE_PATH), its class vectors a template ensemble (no TEACHER_CKPT)
                "TEACHER_KIND": "promptsrc",
                # Ours: the plain teacher's templates: imagenet80 (OpenAI's 80), imagenet60 (PromptSRC's), select
                # (ZeroshotCLIP2's 7 + the dataset's template), custom (the dataset's template)
                "TEACHER_TEMPLATES": "imagenet80",
                # Ours (trainers/teacher_bank.py): read the teacher's image features of each view from a bank
                # computed once, shared by seeds and sweeps. "" = the teacher runs every step (upstream); "auto" =
                # <CLASS_VECTOR_CACHE or $PROMPTKD_CACHE_DIR>/teacher_bank; else a folder of banks (or one bank's
                # folder). Implies views as data.
                "TEACHER_BANK": "",
                # Ours: the bank's deterministic views (dassl/data/views.py) with the teacher on the fly (exactness)
                "VIEWS_AS_DATA": False,
                "BANK_VIEWS": 20,  # views per image; >= OPTIM.MAX_EPOCH gives a fresh view every epoch
                "BANK_SEED": 0,  # seed of the views (not SEED: the run's seed only picks each epoch's view)
                "BANK_DTYPE": "fp16",  # stored features: fp16 or fp32
                "BANK_BATCH_SIZE": 256,  # teacher batch size when building the bank
                "BANK_SHARD_SIZE": 1024,  # images per shard file (the unit of resuming)
            }
        )

    def build_data_loader(self) -> None:
        """Dassl's loaders; with a teacher bank (or ``VIEWS_AS_DATA``) the train loader serves views as data."""
        super().build_data_loader()
        if uses_views(self.cfg):
            self.train_loader_x = view_train_loader(self.cfg, self.dm.dataset.train_x)

    def build_model(self) -> None:
        kd = self.method_cfg
        classnames = self.dm.dataset.classnames

        # the teacher: frozen, eval mode, not registered (never saved, never optimised). Its class vectors are
        # computed once and cached; with a cache hit the teacher is only built when training starts. A saved student
        # (CLASS_VECTORS_FROM, set by train.py for --eval-only) carries its own: then no teacher file is needed.
        self.teacher = None
        saved = class_vectors_for(kd.CLASS_VECTORS_FROM, classnames) if kd.CLASS_VECTORS_FROM else None
        if saved is not None:
            self.teacher_ckpt = saved["teacher"]["checkpoint"]
            self.teacher_record = saved["teacher"].get("record")
            self.class_vector_key = saved["teacher"].get("class_vector_key")
            self.class_vectors = saved["class_vectors"].float().to(self.device)  # (n_cls, d_teacher)
        else:
            self.class_vectors = self.teacher_class_vectors(classnames).to(self.device)  # (n_cls, d_teacher)

        student_clip = self.load_backbone()
        model = PromptKDStudent(
            student_clip, kd.N_CTX_VISION, kd.PROMPT_DEPTH_VISION, self.class_vectors.shape[1], kd.PROJECT_LAYER
        )
        freeze_all_but(model, model.trainable_modules())
        self.register_prompt_model(model)
    def teacher_class_vectors(self, classnames: list[str]) -> torch.Tensor:
        """The teacher's class vectors of ``classnames``: from the cache, else computed (and cached) by the teacher."""
        kd = self.method_cfg
        if kd.TEACHER_KIND == "plain":
            return self.plain_teacher_class_vectors(classnames)
        self.teacher_ckpt = resolve_teacher_checkpoint(kd.TEACHER_CKPT or default_teacher_checkpoint(self.cfg))
        self.teacher_record = teacher_record(self.teacher_ckpt)
        if self.teacher_record:
            r = self.teacher_record
            print(f"Teacher's own test accuracy: {r['accuracy']:.2f}% on the {r['classes']} classes of {r['dataset']} "
                  f"(epoch {r['epoch']}, {r['results']})")  # fmt: skip
        else:
            print("Teacher's own accuracy unknown (no results.json next to its checkpoint folder)")
        self.check_teacher_classes(classnames)
        cache_dir = kd.CLASS_VECTOR_CACHE or os.environ.get("PROMPTKD_CACHE_DIR", "~/.cache/promptkd")
        teacher_clip = resolve_clip_checkpoint(
            kd.TEACHER_NAME, kd.TEACHER_BACKBONE_PATH, path_key="TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH"
        )
        key = class_vector_cache_key(
            self.teacher_ckpt, classnames, kd.TEACHER_NAME, kd.CTX_INIT,
            backbone_file=teacher_clip, precision=kd.PREC, device=self.device.type,
            token_layout=self.cfg.MODEL.BACKBONE.TOKEN_LAYOUT,
        )  # fmt: skip
        return self.cached_class_vectors(cache_dir, key)

    def cached_class_vectors(self, cache_dir: str, key: str) -> torch.Tensor:
        """The class vectors under ``key``: from the cache, else computed by the teacher (and cached).

        The teacher is built here on a cold cache and only when training starts on a warm one: built outside the
        random streams, so the student's initialisation (and every number) is the same either way."""
        self.class_vector_key = key
        cached = cached_class_vectors(None, cache_dir, key)
        if cached is None:
            with preserved_rng_state():
                teacher = self.build_teacher()
                cached = cached_class_vectors(teacher, cache_dir, key)  # from the fp32 teacher
            self.teacher = self.precision.cast_frozen(teacher)  # cast once, to the storage precision
        return cached

    def plain_teacher_class_vectors(self, classnames: list[str]) -> torch.Tensor:
        """TEACHER_KIND plain: an unprompted CLIP's template-ensemble class vectors (cached like the prompted ones)."""
        kd = self.method_cfg
        self.teacher_ckpt, self.teacher_record = "", None
        templates = teacher_templates(kd.TEACHER_TEMPLATES, self.cfg.DATASET.NAME)
        print(f"Teacher: plain CLIP {kd.TEACHER_NAME} without prompts, class vectors from {len(templates)} templates "
              f"({kd.TEACHER_TEMPLATES})")  # fmt: skip
        teacher_clip = resolve_clip_checkpoint(
            kd.TEACHER_NAME, kd.TEACHER_BACKBONE_PATH, path_key="TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH"
        )
        key = plain_cache_key(teacher_clip, classnames, templates, precision=kd.PREC, device=self.device.type,
                              token_layout=self.cfg.MODEL.BACKBONE.TOKEN_LAYOUT)  # fmt: skip
        cache_dir = kd.CLASS_VECTOR_CACHE or os.environ.get("PROMPTKD_CACHE_DIR", "~/.cache/promptkd")
        return self.cached_class_vectors(cache_dir, key)

    def student_record(self) -> dict:
        """What the checkpoint carries so the student works alone (``trainers/student_record.py``)."""
        cfg, kd = self.cfg, self.method_cfg
        if not hasattr(self, "_backbone_sha256"):
            self._backbone_sha256 = clip_file_sha256(self.loaded_backbones["MODEL.BACKBONE.PATH"]["file"])
        backbone = self.loaded_backbones["MODEL.BACKBONE.PATH"]
        return {
            "format": RECORD_FORMAT,
            "classnames": list(self.dm.dataset.classnames),
            "class_vectors": self.class_vectors.detach().float().cpu(),  # (n_cls, d_teacher), L2-normalised
            "logit_scale": self.model.logit_scale.detach().float().cpu().clone(),  # log of the scale, as CLIP's
            "design": {"n_ctx": kd.N_CTX_VISION, "depth": kd.PROMPT_DEPTH_VISION, "project_layers": kd.PROJECT_LAYER,
                       "out_dim": int(self.class_vectors.shape[1]),
                       "token_layout": cfg.MODEL.BACKBONE.TOKEN_LAYOUT},  # fmt: skip
            "backbone": {"name": cfg.MODEL.BACKBONE.NAME, "sha256": self._backbone_sha256, "file": backbone["file"],
                         "architecture": {k: v for k, v in backbone.items()
                                          if k not in ("name", "file", "source", "token_layout")}},
            "preprocess": {"resolution": list(cfg.INPUT.SIZE), "mean": list(cfg.INPUT.PIXEL_MEAN),
                           "std": list(cfg.INPUT.PIXEL_STD), "interpolation": cfg.INPUT.INTERPOLATION,
                           "normalize": "normalize" in cfg.INPUT.TRANSFORMS},  # fmt: skip
            "dataset": cfg.DATASET.NAME, "modal": self.protocol.modal or cfg.TRAINER.MODAL, "n_base": self.partition.num_base,
            "teacher": {"kind": kd.TEACHER_KIND, "checkpoint": self.teacher_ckpt, "record": self.teacher_record,
                        "templates": teacher_templates(kd.TEACHER_TEMPLATES, cfg.DATASET.NAME)
                        if kd.TEACHER_KIND == "plain" else None,
                        "name": kd.TEACHER_NAME, "backbone_path": kd.TEACHER_BACKBONE_PATH, "ctx_init": kd.CTX_INIT,
                        "token_layout": cfg.MODEL.BACKBONE.TOKEN_LAYOUT,
                        "class_vector_key": getattr(self, "class_vector_key", None)},  # fmt: skip
        }

    def checkpoint_extras(self) -> dict:
        return {**super().checkpoint_extras(), RECORD_KEY: self.student_record()}

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

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        if cfg.TRAINER.PROMPTKD.TEACHER_KIND not in TEACHER_KINDS:
            raise TeacherCheckpointError(
                f"TRAINER.PROMPTKD.TEACHER_KIND must be one of {TEACHER_KINDS}, got {cfg.TRAINER.PROMPTKD.TEACHER_KIND!r}"
            )

    def build_teacher(self) -> FrozenTeacher | PlainTeacher:
        """The frozen teacher on the device, in fp32 (its class vectors are computed in fp32; the caller casts it
        to the storage precision once)."""
        kd = self.method_cfg
        if kd.TEACHER_KIND == "plain":
            clip_model = self.load_backbone(kd.TEACHER_NAME, kd.TEACHER_BACKBONE_PATH,
                                            "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH")  # fmt: skip
            templates = teacher_templates(kd.TEACHER_TEMPLATES, self.cfg.DATASET.NAME)
            teacher = PlainTeacher(clip_model, self.dm.dataset.classnames, templates).to(self.device)
            return teacher  # fp32: the caller casts it once
        state = read_teacher_state(self.teacher_ckpt)
        clip_model = self.load_backbone(kd.TEACHER_NAME, kd.TEACHER_BACKBONE_PATH, "TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH")
        return build_teacher(clip_model, self.dm.dataset.classnames, state, kd.CTX_INIT).to(self.device)

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
        kd = self.method_cfg
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
        if self.method_cfg.TEACHER_BANK:
            self.bank = open_teacher_bank(self)
            self.teacher = None
        elif self.teacher is None:
            with preserved_rng_state():
                self.teacher = self.precision.cast_frozen(self.build_teacher())

    def results_extras(self) -> dict:
        """The teacher the student was distilled from (its checkpoint and what its own run recorded)."""
        return {"teacher": {"checkpoint": self.teacher_ckpt, **(self.teacher_record or {})}}
