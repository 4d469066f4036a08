"""``extend_cfg``: the config nodes of every trainer we ship, with upstream names, types and defaults.

yacs rejects keys without a default and checks types against the default, so upstream yaml files and
script flags only load if these match exactly (e.g. PromptSRC's loss weights and GPA values are ints).
"""

from __future__ import annotations

from yacs.config import CfgNode as CN


def extend_cfg(cfg: CN) -> CN:
    """Add the trainer nodes and the dataset/protocol keys that the engine defaults do not have (in place)."""
    # Protocol (dassl/evaluation/protocol.py): which classes a standard run keeps (all, base, new)
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"
    # Ours (datasets/common.py): which splits a dataset builds. auto = transductive for PromptKD, else standard
    cfg.DATASET.PROTOCOL = "auto"
    # Ours: the split used for model selection: "val" = the json val split (CoOp, MaPLe, PromptSRC), "test" = the
    # test split (the PromptKD repository); "auto" = each upstream's choice (datasets/common.py resolve_val_source)
    cfg.DATASET.VAL_SOURCE = "auto"
    # Ours: import an upstream few-shot cache (split_fewshot/*.pkl) through a restricted unpickler
    cfg.DATASET.READ_UPSTREAM_PKL = False
    # PromptKD's protocol switch (base2novel or cross); read by the dataset classes for the student's splits
    cfg.TRAINER.MODAL = "base2novel"
    cfg.TEST.NO_TEST = False
    # Ours: an explicit CLIP checkpoint file (empty: look up MODEL.BACKBONE.NAME in the CLIP cache dir)
    cfg.MODEL.BACKBONE.PATH = ""

    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 16  # number of context vectors
    cfg.TRAINER.COOP.CSC = False  # class-specific context
    cfg.TRAINER.COOP.CTX_INIT = ""  # initialization words
    cfg.TRAINER.COOP.PREC = "fp16"  # fp16, fp32, bf16, amp
    cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"  # 'middle' or 'end' or 'front'
    cfg.TRAINER.COOP.W = 1.0  # KgCoOp: weight of the knowledge-guided loss
    cfg.TRAINER.COOP.ALPHA = 1.0  # declared by KgCoOp's train.py, never read

    cfg.TRAINER.COCOOP = CN()
    cfg.TRAINER.COCOOP.N_CTX = 16
    cfg.TRAINER.COCOOP.CTX_INIT = ""
    cfg.TRAINER.COCOOP.PREC = "fp16"

    cfg.TRAINER.MAPLE = CN()
    cfg.TRAINER.MAPLE.N_CTX = 2
    cfg.TRAINER.MAPLE.CTX_INIT = "a photo of a"
    cfg.TRAINER.MAPLE.PREC = "fp16"
    cfg.TRAINER.MAPLE.PROMPT_DEPTH = 9  # max 12, min 0; 1 = shallow MaPLe (J=1)

    cfg.TRAINER.IVLP = CN()
    cfg.TRAINER.IVLP.N_CTX_VISION = 2
    cfg.TRAINER.IVLP.N_CTX_TEXT = 2
    cfg.TRAINER.IVLP.CTX_INIT = "a photo of a"
    cfg.TRAINER.IVLP.PREC = "fp16"
    cfg.TRAINER.IVLP.PROMPT_DEPTH_VISION = 9  # max 12, min 0; 0 = no vision prompts
    cfg.TRAINER.IVLP.PROMPT_DEPTH_TEXT = 9

    cfg.TRAINER.VPT = CN()
    cfg.TRAINER.VPT.N_CTX_VISION = 2
    cfg.TRAINER.VPT.CTX_INIT = "a photo of a"  # unused upstream
    cfg.TRAINER.VPT.PREC = "fp16"
    # Ours: upstream VPT runs in fp32 whatever PREC says (its loader returns model.float()); True honours PREC
    cfg.TRAINER.VPT.HONOUR_PREC = False
    cfg.TRAINER.VPT.PROMPT_DEPTH_VISION = 1  # 1 = shallow VPT

    cfg.TRAINER.PROMPTSRC = CN()
    cfg.TRAINER.PROMPTSRC.N_CTX_VISION = 4
    cfg.TRAINER.PROMPTSRC.N_CTX_TEXT = 4
    cfg.TRAINER.PROMPTSRC.CTX_INIT = "a photo of a"
    cfg.TRAINER.PROMPTSRC.PREC = "fp16"
    cfg.TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION = 9
    cfg.TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT = 9
    cfg.TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT = 25  # int, as upstream
    cfg.TRAINER.PROMPTSRC.IMAGE_LOSS_WEIGHT = 10
    cfg.TRAINER.PROMPTSRC.GPA_MEAN = 15
    cfg.TRAINER.PROMPTSRC.GPA_STD = 1
    # Ours: encode the class prompts in chunks of this many (0 = all at once), with activation checkpointing
    # when training, so teacher memory does not grow with the number of classes (results are unchanged)
    cfg.TRAINER.PROMPTSRC.TEXT_CHUNK = 0

    cfg.TRAINER.PROMPTKD = CN()
    cfg.TRAINER.PROMPTKD.N_CTX_VISION = 4
    cfg.TRAINER.PROMPTKD.N_CTX_TEXT = 4
    cfg.TRAINER.PROMPTKD.CTX_INIT = "a photo of a"
    cfg.TRAINER.PROMPTKD.PREC = "fp16"
    cfg.TRAINER.PROMPTKD.PROMPT_DEPTH_VISION = 9
    cfg.TRAINER.PROMPTKD.PROMPT_DEPTH_TEXT = 9
    cfg.TRAINER.PROMPTKD.PROJECT_LAYER = 2  # projector depth (upstream ignores it and always builds 2)
    cfg.TRAINER.PROMPTKD.CE_WEIGHT = 0.0  # declared upstream, never read
    cfg.TRAINER.PROMPTKD.KD_WEIGHT = 1.0
    cfg.TRAINER.PROMPTKD.TEMPERATURE = 1.0
    # Upstream's default is the typo "ViT/L-14"; every upstream yaml sets "ViT-L/14", which we take as default.
    cfg.TRAINER.PROMPTKD.TEACHER_NAME = "ViT-L/14"
    # Where the teacher's CLIP weights are (empty: the CLIP cache dir, see trainers/backbone.py)
    cfg.TRAINER.PROMPTKD.TEACHER_BACKBONE_PATH = ""
    # The teacher's PromptSRC checkpoint (ours or upstream's); empty = upstream's path pattern
    # (teacher_model/<DATASET.NAME>/VLPromptLearner/model-best.pth.tar; cross: ImageNet-xd/VLPromptLearner_large)
    cfg.TRAINER.PROMPTKD.TEACHER_CKPT = ""
    # Where the teacher's class vectors are cached (empty = $PROMPTKD_CACHE_DIR or ~/.cache/promptkd)
    cfg.TRAINER.PROMPTKD.CLASS_VECTOR_CACHE = ""
    # Ours (trainers/teacher_bank.py): read the teacher's image features of each view from a bank computed once,
    # shared by seeds and sweeps. "" = the teacher runs every step (upstream); "auto" = <CLASS_VECTOR_CACHE or
    # $PROMPTKD_CACHE_DIR>/teacher_bank; else a folder of banks (or one bank's folder). Implies views as data.
    cfg.TRAINER.PROMPTKD.TEACHER_BANK = ""
    # Ours: the bank's deterministic views (dassl/data/views.py) with the teacher run on the fly (exactness checks)
    cfg.TRAINER.PROMPTKD.VIEWS_AS_DATA = False
    cfg.TRAINER.PROMPTKD.BANK_VIEWS = 20  # views per image; >= OPTIM.MAX_EPOCH gives a fresh view every epoch
    cfg.TRAINER.PROMPTKD.BANK_SEED = 0  # seed of the views (not SEED: the run's seed only picks each epoch's view)
    cfg.TRAINER.PROMPTKD.BANK_DTYPE = "fp16"  # stored features: fp16 or fp32
    cfg.TRAINER.PROMPTKD.BANK_BATCH_SIZE = 256  # teacher batch size when building the bank
    cfg.TRAINER.PROMPTKD.BANK_SHARD_SIZE = 1024  # images per shard file (the unit of resuming)

    # ProGrad (the KgCoOp repository's Dassl.ProGrad fork): its loss keys, with upstream's names and types
    cfg.LOSS = CN()
    cfg.LOSS.GM = False  # declared upstream, never read
    cfg.LOSS.NAME = ""  # "prograd" selects the prompt-aligned gradient
    cfg.LOSS.ALPHA = 0.0  # declared upstream, never read
    cfg.LOSS.T = 1.0  # temperature of the KL to the zero-shot CLIP's logits
    cfg.LOSS.LAMBDA = 1.0  # how much of the conflicting gradient component is removed (1.0 = all of it)
    return cfg
