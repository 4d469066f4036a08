"""Installed next to Hugging Face ``datasets``, the toolkit works from any folder and ``import datasets`` stays HF's.

The environment is a fresh venv (on top of this interpreter's packages, for torch) with a locally built stand-in
distribution named ``datasets`` (installing the real one from PyPI would pull pyarrow, pandas and more): it is a
top-level ``datasets`` package that says who it is, which is all the clash is about. The toolkit is built from a
copy of the repository as a regular (non-editable) wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, make_tiny_demo

SHIPPED = ("promptkd", "dassl", "trainers", "datasets", "tools", "configs", "train.py", "setup.py", "pyproject.toml",
           "README.md")  # fmt: skip


def _venv(tmp_path: Path) -> Path:
    """A venv that sees this interpreter's packages; without its own pip and setuptools (ensurepip's would
    shadow the newer ones), so the running pip installs into it (``pip --python``)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


def _pip_install(python: Path, source: Path) -> None:
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-index", "--no-deps",
               "--no-build-isolation", str(source)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _hf_stand_in(folder: Path) -> Path:
    (folder / "datasets").mkdir(parents=True)
    (folder / "datasets" / "__init__.py").write_text('WHO = "huggingface stand-in"\n', encoding="utf-8")
    (folder / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "datasets"
        version = "0.0.1"
        [tool.setuptools]
        packages = ["datasets"]
    """), encoding="utf-8")
    return folder


@pytest.mark.slow
def test_installed_next_to_hf_datasets_both_work_from_any_folder(tmp_path):
    python = _venv(tmp_path)
    _pip_install(python, _hf_stand_in(tmp_path / "hf"))
    source = tmp_path / "source"
    for name in SHIPPED:
        copy = shutil.copytree if (REPO_ROOT / name).is_dir() else shutil.copy2
        copy(REPO_ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                                 if (REPO_ROOT / name).is_dir() else {}))  # fmt: skip
    _pip_install(python, source)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    installed = sorted(p.name for p in Path(site).iterdir() if not p.name.endswith((".dist-info", ".pth", ".py")))
    assert "promptkd" in installed and not {"dassl", "trainers", "tools"} & set(installed), installed

    data, ckpt = make_tiny_demo(tmp_path / "assets", seed=2)
    work = tmp_path / "elsewhere"  # not the repository: nothing of it on sys.path
    work.mkdir()
    check = textwrap.dedent(f"""
        import datasets
        assert datasets.WHO == "huggingface stand-in", datasets.__file__
        import promptkd.datasets, promptkd.trainers
        import dassl, tools, trainers
        from dassl.data.datasets import DATASET_REGISTRY
        from dassl.engine import TRAINER_REGISTRY
        assert dassl is promptkd.dassl and trainers is promptkd.trainers and tools is promptkd.tools
        assert {{"Caltech101", "Demo", "ImageNet"}} <= set(DATASET_REGISTRY.registered_names())
        assert {{"CoOp", "PromptKD"}} <= set(TRAINER_REGISTRY.registered_names())
        import datasets
        assert datasets.WHO == "huggingface stand-in" and promptkd.MODE == "package"
        import promptkd.train
        assert promptkd.train.main([
            "--root", {str(data)!r}, "--trainer", "ZeroshotCLIP", "--eval-only", "--output-dir", "zs",
            "--dataset-config-file", str(promptkd.train.CONFIG_DIR / "datasets/demo.yaml"),
            "--config-file", str(promptkd.train.CONFIG_DIR / "trainers/CoOp/vit_b16.yaml"),
            "MODEL.BACKBONE.PATH", {str(ckpt)!r}, "INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0",
            "TRAINER.COOP.PREC", "fp32", "USE_CUDA", "False"]) == 0
        print("ok")
    """)
    result = subprocess.run([str(python), "-c", check], cwd=work, capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout + result.stderr
    assert (work / "zs" / "results.json").is_file()

    helped = subprocess.run([str(python.parent / "promptkd-train"), "--help"], cwd=work, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert helped.returncode == 0 and "PromptKD" in helped.stdout and "vit_b16.yaml" in helped.stdout
    for command in ("promptkd-demo", "promptkd-parse-results", "promptkd-plot-results", "promptkd-prepare-data",
                    "promptkd-download-clip"):  # fmt: skip
        result = subprocess.run([str(python.parent / command), "--help"], cwd=work, capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.startswith("usage:"), (command, result.stderr)


def test_in_the_repository_the_package_names_alias_the_top_level_modules():
    """From the repository root (CoOp layout) the folders are the modules; ``promptkd.<name>`` is the same object."""
    import dassl
    import datasets
    import promptkd
    import promptkd.dassl
    import promptkd.datasets
    import tools

    assert promptkd.MODE == "checkout"
    assert promptkd.dassl is dassl and promptkd.datasets is datasets
    assert Path(tools.__file__).parent == REPO_ROOT / "tools"
