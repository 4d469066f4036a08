"""Our own engine with the import paths and behaviour of Dassl.pytorch that prompt-learning trainers use.

A trainer or dataset file written for Dassl.pytorch runs on it unchanged except for its CLIP import.
"""

__version__ = "0.1.0"
