"""Console entry points (``promptkd-train``, ``promptkd-demo``, ...): each runs one tool's ``main``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

__all__ = ["train", "demo", "parse_results", "plot_results", "prepare_data", "download_clip", "import_checkpoint",
           "predict", "export_student", "export_checkpoint"]


def _runner(module: str) -> Callable[[], None]:
    def run() -> None:
        tool = importlib.import_module(f"promptkd.{module}")
        sys.exit(tool.main(sys.argv[1:]))

    run.__doc__ = f"Run promptkd.{module}.main with the command-line arguments."
    return run


train = _runner("train")
demo = _runner("tools.demo")
parse_results = _runner("tools.parse_results")
plot_results = _runner("tools.plot_results")
prepare_data = _runner("tools.prepare_data")
download_clip = _runner("tools.download_clip")
import_checkpoint = _runner("tools.import_checkpoint")
predict = _runner("tools.predict")
export_student = _runner("tools.export_student")
export_checkpoint = _runner("tools.export_checkpoint")
