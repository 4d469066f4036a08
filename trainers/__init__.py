"""Trainers (one file per method), registered into ``dassl.engine.TRAINER_REGISTRY`` on import,
plus the shared machinery they use (backbone loading, templates, config defaults)."""

from . import clip_adapter, cocoop, coop, ivlp, kgcoop, maple, prograd, promptkd, promptsrc, vpt, zsclip  # noqa: F401
