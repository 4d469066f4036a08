"""tools/prepare_data.py and datasets/catalog.py: layout checks on tiny datasets, downloads from a local server.

No real network: a ThreadingHTTPServer on 127.0.0.1 plays the HuggingFace mirror (HEAD answers with a redirect
carrying ``X-Linked-Etag``, GET follows the redirect and honours ``Range``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from dassl.utils.download import DownloadError
from datasets.catalog import CATALOG, find_dataset, mirror_url
from tests.conftest import REPO_ROOT, make_tiny_caltech
from tools.prepare_data import UnsafeArchiveError, check_dataset, extract_archive, main, remote_sha256

# ---------------------------------------------------------------------------------------------------------------
# fixtures: tiny datasets, archives, a fake mirror
# ---------------------------------------------------------------------------------------------------------------


def _zip_dir(source_root: Path, folder: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((source_root / folder).rglob("*")):
            zf.write(path, path.relative_to(source_root).as_posix())
    return buffer.getvalue()


def _targz_dir(source_root: Path, folder: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        tf.add(source_root / folder, arcname=folder)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def caltech_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Caltech101 (``<source>/caltech-101``) to archive and compare against."""
    return make_tiny_caltech(tmp_path_factory.mktemp("caltech_source"))


@pytest.fixture(scope="module")
def caltech_zip(caltech_source: Path) -> bytes:
    return _zip_dir(caltech_source, "caltech-101")


@dataclass
class Mirror:
    base_url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)  # name -> bytes served at /<name>
    # name -> X-Linked-Etag value (default: the file's true sha256, quoted)
    etags: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Range)

    def add(self, name: str, data: bytes, etag: str | None = None) -> str:
        self.files[name] = data
        self.etags[name] = etag or hashlib.sha256(data).hexdigest()
        return f"{self.base_url}/{name}"


def _handler(mirror: Mirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """``/<name>`` redirects to ``/cdn/<name>`` with the X-Linked-Etag (as huggingface.co does);
        ``/cdn/<name>`` serves the bytes, with ``Range: bytes=N-`` support."""

        def _answer(self, head: bool) -> None:
            mirror.requests.append((self.command, self.path, self.headers.get("Range")))
            name = self.path.removeprefix("/cdn/").lstrip("/")
            if name not in mirror.files:
                self.send_error(404)
                return
            if not self.path.startswith("/cdn/"):
                self.send_response(302)
                self.send_header("Location", f"/cdn/{name}")
                etag = mirror.etags[name]
                self.send_header("X-Linked-Etag", etag if etag.startswith("W/") else f'"{etag}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = mirror.files[name]
            start = 0
            header = self.headers.get("Range")
            if header:
                start = int(header.removeprefix("bytes=").removesuffix("-"))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if not head:
                self.wfile.write(data[start:])

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._answer(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(head=True)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    state = Mirror()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main([*argv, "--no-progress"])
    return code, capsys.readouterr().out


def _same_tree(a: Path, b: Path) -> bool:
    files_a = {p.relative_to(a): p.read_bytes() for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b): p.read_bytes() for p in b.rglob("*") if p.is_file()}
    return files_a == files_b


# ---------------------------------------------------------------------------------------------------------------
# catalog
# ---------------------------------------------------------------------------------------------------------------


def test_catalog_matches_configs_and_spec_counts() -> None:
    assert len(CATALOG) == 15
    for stem, info in CATALOG.items():
        config = (REPO_ROOT / "configs" / "datasets" / f"{stem}.yaml").read_text()
        assert re.search(rf'NAME:\s*"{info.name}"', config), stem
        if info.test_base_size is not None:
            assert info.test_size == info.test_base_size + info.test_novel_size
        assert (mirror_url(info) is None) == (stem == "imagenet")
    caltech = CATALOG["caltech101"]
    assert (caltech.dataset_dir, caltech.image_dir, caltech.split_file) == (
        "caltech-101",
        "101_ObjectCategories",
        "split_zhou_Caltech101.json",
    )
    assert (caltech.train_size, caltech.test_base_size, caltech.test_novel_size, caltech.test_size) == (
        4128,
        1549,
        916,
        2465,
    )
    assert (CATALOG["oxford_pets"].num_base_classes, CATALOG["oxford_pets"].num_novel_classes) == (19, 18)
    assert CATALOG["stanford_cars"].split_paths_root == ""
    assert (
        CATALOG["fgvc_aircraft"].split_file is None and "variants.txt" in CATALOG["fgvc_aircraft"].split_files
    )
    assert (
        CATALOG["imagenet_a"].classnames_file == "classnames.txt" and CATALOG["imagenet_a"].num_classes == 200
    )
    assert mirror_url(caltech) == (
        "https://huggingface.co/datasets/zhengli97/prompt_learning_dataset/resolve/main/caltech-101.zip"
    )
    for name in ("Caltech101", "caltech-101", "DescribableTextures", "imagenet-a", "ImageNetV2"):
        assert find_dataset(name).stem in CATALOG
    with pytest.raises(KeyError):
        find_dataset("cifar10")


# ---------------------------------------------------------------------------------------------------------------
# --check
# ---------------------------------------------------------------------------------------------------------------


def test_check_good_dataset_passes_and_reports_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tiny_caltech(tmp_path)
    code, out = _run(["--root", str(tmp_path), "--check", "caltech101"], capsys)
    assert code == 0, out
    assert "4 classes; train 16, val 8, test 12 (base 6 / novel 6)" in out
    assert "36 of 36 images exist and decode" in out
    assert "classes 4 (expected 100)" in out  # a subset: a warning, not an error
    assert "OK (1 warning)" in out
    problems = check_dataset(tmp_path, "Caltech101")  # DATASET.NAME works as well as the stem
    assert [p.level for p in problems] == ["warning"]
    # without DATASET, --check looks at what is under the root
    code, out = _run(["--root", str(tmp_path), "--check"], capsys)
    assert code == 0 and "== caltech101" in out and "dtd" not in out


def test_check_reports_missing_image_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tiny_caltech(tmp_path)
    gone = tmp_path / "caltech-101" / "101_ObjectCategories" / "anchor" / "image_0003.jpg"
    gone.unlink()
    code, out = _run(["--root", str(tmp_path), "--check", "caltech101", "--quick"], capsys)
    assert code == 1
    assert "1 of 36 images are missing" in out
    assert str(gone) in out
    assert f"fix: python tools/prepare_data.py --root {tmp_path} --download caltech101" in out
    assert "FAILED: 1 error" in out


def test_check_reports_missing_split_file_with_download_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tiny_caltech(tmp_path)
    split = tmp_path / "caltech-101" / "split_zhou_Caltech101.json"
    split.unlink()
    code, out = _run(["--root", str(tmp_path), "--check", "caltech101"], capsys)
    assert code == 1
    assert f"split file missing: {split}" in out
    assert f"fix: python tools/prepare_data.py --root {tmp_path} --download caltech101" in out


def test_check_reports_malformed_split_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tiny_caltech(tmp_path)
    split_path = tmp_path / "caltech-101" / "split_zhou_Caltech101.json"
    split = json.loads(split_path.read_text())
    split["train"][0] = ["Faces/image_0001.jpg", "0", "face"]  # label as a string
    del split["val"]
    split_path.write_text(json.dumps(split))
    code, out = _run(["--root", str(tmp_path), "--check", "caltech101"], capsys)
    assert code == 1 and "lacks the list(s) ['val']" in out
    split["val"] = []
    split_path.write_text(json.dumps(split))
    code, out = _run(["--root", str(tmp_path), "--check", "caltech101"], capsys)
    assert code == 1 and "1 entries of" in out and 'train[0] = ["Faces/image_0001.jpg", "0", "face"]' in out


def test_check_suggests_renaming_a_misnamed_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tiny_caltech(tmp_path)
    (tmp_path / "caltech-101").rename(tmp_path / "Caltech101")
    code, out = _run(["--root", str(tmp_path), "--check", "caltech101"], capsys)
    assert code == 1
    assert "rename Caltech101 to caltech-101" in out
    assert f"mv {tmp_path / 'Caltech101'} {tmp_path / 'caltech-101'}" in out
    # the README typos users copy
    for wrong, stem in (
        ("StandfordCars", "stanford_cars"),
        ("FGVCaircraft", "fgvc_aircraft"),
        ("DTD", "dtd"),
    ):
        (tmp_path / wrong).mkdir()
        problems = check_dataset(tmp_path, stem)
        assert len(problems) == 1 and f"rename {wrong} to {CATALOG[stem].dataset_dir}" in (
            problems[0].fix or ""
        )
    # a sibling dataset's folder is not a near miss (imagenet-r is not a misspelt imagenet-a)
    (tmp_path / "imagenet-rendition").mkdir()
    assert "no folder" in check_dataset(tmp_path, "imagenet_a")[0].message


def test_check_spots_content_extracted_one_folder_too_deep(tmp_path: Path) -> None:
    make_tiny_caltech(tmp_path / "caltech-101")  # -> caltech-101/caltech-101/...
    (problem,) = check_dataset(tmp_path, "caltech101")
    inner, outer = tmp_path / "caltech-101" / "caltech-101", tmp_path / "caltech-101"
    assert problem.is_error and "image folder missing" in problem.message
    assert problem.fix is not None and problem.fix.startswith(f"mv {inner}/* {outer}/ && rmdir {inner}")


def test_check_reports_undecodable_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tiny_caltech(tmp_path)
    broken = tmp_path / "caltech-101" / "101_ObjectCategories" / "Faces" / "image_0002.jpg"
    broken.write_bytes(b"this is not a jpeg" * 10)
    code, out = _run(["--root", str(tmp_path), "--check", "caltech101"], capsys)
    assert code == 1
    assert "1 images do not decode" in out and str(broken) in out
    # --quick only checks existence
    code, out = _run(["--root", str(tmp_path), "--check", "caltech101", "--quick"], capsys)
    assert code == 0 and "36 of 36 images exist (not decoded: --quick)" in out


def _tiny_imagenet_a(root: Path, wnids: tuple[str, ...] = ("n01498041", "n01531178")) -> Path:
    image_dir = root / "imagenet-adversarial" / "imagenet-a"
    for i, wnid in enumerate(wnids):
        (image_dir / wnid).mkdir(parents=True)
        Image.new("RGB", (20, 20), (40 * i, 90, 200)).save(image_dir / wnid / f"0.{wnid}.jpg")
    (image_dir.parent / "imagenet-a" / "README.txt").write_text("ignored")
    return image_dir.parent


def test_check_reports_missing_classnames_for_imagenet_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset_dir = _tiny_imagenet_a(tmp_path)
    target = dataset_dir / "classnames.txt"
    code, out = _run(["--root", str(tmp_path), "--check", "imagenet_a"], capsys)
    assert code == 1
    assert f"classnames.txt missing: {target}" in out
    assert "--classnames /path/to/classnames.txt imagenet_a" in out

    # with ImageNet's file at hand the fix is a copy, and the default mode makes it
    imagenet_names = tmp_path / "imagenet" / "classnames.txt"
    imagenet_names.parent.mkdir()
    imagenet_names.write_text("n01440764 tench\nn01498041 stingray\nn01531178 goldfinch\n")
    code, out = _run(["--root", str(tmp_path), "--check", "imagenet_a"], capsys)
    assert code == 1 and f"fix: cp {imagenet_names} {target}" in out
    code, out = _run(["--root", str(tmp_path), "imagenet_a"], capsys)
    assert code == 0, out
    assert target.read_text() == imagenet_names.read_text()
    assert "2 class folders; test 2" in out and "2 of 2 images exist and decode" in out


def test_check_reports_class_folder_unknown_to_classnames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset_dir = _tiny_imagenet_a(tmp_path)
    (dataset_dir / "classnames.txt").write_text("n01498041 stingray\n")
    code, out = _run(["--root", str(tmp_path), "--check", "imagenet_a"], capsys)
    assert code == 1 and "have no entry in classnames.txt" in out and "n01531178" in out


# ---------------------------------------------------------------------------------------------------------------
# --download
# ---------------------------------------------------------------------------------------------------------------


def test_download_zip_verifies_header_sha256_extracts_and_checks(
    mirror: Mirror,
    caltech_zip: bytes,
    caltech_source: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = mirror.add("caltech-101.zip", caltech_zip)
    root = tmp_path / "data"
    code, out = _run(["--root", str(root), "--download", "caltech101", "--url", url], capsys)
    assert code == 0, out
    assert f"expected SHA256 (X-Linked-Etag) {hashlib.sha256(caltech_zip).hexdigest()}" in out
    assert _same_tree(root / "caltech-101", caltech_source / "caltech-101")
    assert sorted(p.name for p in root.iterdir()) == ["caltech-101"]  # no archive, no .extracting left
    assert "36 of 36 images exist and decode" in out and "OK" in out
    methods = [(m, p) for m, p, _ in mirror.requests]
    assert methods[:2] == [("HEAD", "/caltech-101.zip"), ("GET", "/caltech-101.zip")]


def test_download_tar_gz_keeps_archive_on_request(
    mirror: Mirror, caltech_source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _targz_dir(caltech_source, "caltech-101")
    url = mirror.add("caltech-101.tar.gz", data)
    code, out = _run(
        ["--root", str(tmp_path), "--download", "caltech101", "--url", url, "--keep-archive"], capsys
    )
    assert code == 0, out
    assert _same_tree(tmp_path / "caltech-101", caltech_source / "caltech-101")
    assert (tmp_path / "caltech-101.tar.gz").read_bytes() == data


def test_default_mode_downloads_only_when_absent(
    mirror: Mirror, caltech_zip: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = mirror.add("caltech-101.zip", caltech_zip)
    code, out = _run(["--root", str(tmp_path), "caltech101", "--url", url], capsys)
    assert code == 0 and "downloading" in out and "OK" in out
    requests = len(mirror.requests)
    code, out = _run(["--root", str(tmp_path), "caltech101", "--url", url], capsys)
    assert code == 0 and "downloading" not in out
    assert len(mirror.requests) == requests  # present: checked, not fetched again


def test_download_404_says_what_failed(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(
        ["--root", str(tmp_path), "--download", "dtd", "--url", f"{mirror.base_url}/nope.zip"], capsys
    )
    assert code == 1 and "HTTP 404" in out
    assert not (tmp_path / "dtd").exists()


@pytest.mark.parametrize("source", ["header", "flag"])
def test_download_with_wrong_sha256_fails_and_extracts_nothing(
    source: str, mirror: Mirror, caltech_zip: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "ab" * 32
    url = mirror.add("caltech-101.zip", caltech_zip, etag=wrong if source == "header" else None)
    argv = ["--root", str(tmp_path), "--download", "caltech101", "--url", url]
    if source == "flag":
        argv += ["--sha256", wrong]
    code, out = _run(argv, capsys)
    assert code == 1
    assert "SHA256 mismatch" in out and f"expected {wrong}" in out
    assert list(tmp_path.iterdir()) == []  # no dataset, no staging folder, no archive, no .part


def test_interrupted_extraction_completes_on_rerun(
    mirror: Mirror,
    caltech_zip: bytes,
    caltech_source: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = mirror.add("caltech-101.zip", caltech_zip)
    staging_images = tmp_path / ".caltech-101.extracting" / "caltech-101" / "101_ObjectCategories" / "Faces"
    staging_images.mkdir(parents=True)
    source_images = caltech_source / "caltech-101" / "101_ObjectCategories" / "Faces"
    done = staging_images / "image_0001.jpg"
    done.write_bytes((source_images / "image_0001.jpg").read_bytes())
    os.utime(done, ns=(1_000_000_000, 1_000_000_000))  # an old mtime shows whether it is rewritten
    truncated = staging_images / "image_0002.jpg"
    truncated.write_bytes((source_images / "image_0002.jpg").read_bytes()[:100])
    (staging_images / "image_0003.jpg.partial").write_bytes(b"half")

    code, out = _run(["--root", str(tmp_path), "--download", "caltech101", "--url", url], capsys)
    assert code == 0, out
    assert "resumed extraction: 1 files were already extracted" in out
    final = tmp_path / "caltech-101" / "101_ObjectCategories" / "Faces"
    assert (final / "image_0001.jpg").stat().st_mtime_ns == 1_000_000_000  # skipped, not rewritten
    assert _same_tree(tmp_path / "caltech-101", caltech_source / "caltech-101")
    assert not (tmp_path / ".caltech-101.extracting").exists()


def test_zip_with_path_traversal_is_refused(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("caltech-101/split_zhou_Caltech101.json", "{}")
        zf.writestr("../evil", "pwned")
    url = mirror.add("caltech-101.zip", buffer.getvalue())
    root = tmp_path / "data"
    code, out = _run(["--root", str(root), "--download", "caltech101", "--url", url], capsys)
    assert code == 1
    assert "'../evil'" in out and "refusing" in out
    assert not (tmp_path / "evil").exists()
    assert not (root / "caltech-101").exists() and not (root / ".caltech-101.extracting").exists()


def test_tar_with_absolute_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("/tmp/evil")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"pwned"))
    with pytest.raises(UnsafeArchiveError, match="absolute path"):
        extract_archive(archive, tmp_path / "staging", progress=False)
    assert not (tmp_path / "staging").exists()


def test_download_imagenet_prints_instructions_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(["--root", str(tmp_path), "--download", "imagenet"], capsys)
    assert code != 0
    assert "image-net.org" in out and "licence" in out
    assert f"{tmp_path / 'imagenet'}/images/train/<wnid>/" in out and "classnames.txt" in out
    assert list(tmp_path.iterdir()) == []


def test_remote_sha256_follows_redirects_with_head(mirror: Mirror) -> None:
    url = mirror.add("x.zip", b"payload", etag='W/"' + "CD" * 32 + '"')  # weak, upper case
    assert remote_sha256(url) == "cd" * 32
    assert remote_sha256(f"{mirror.base_url}/missing.zip") is None
    with pytest.raises(DownloadError, match="Cannot reach 127.0.0.1:9"):  # no server answered: not "no hash"
        remote_sha256("http://127.0.0.1:9/nothing-listens-here.zip", timeout=2)
    assert all(method == "HEAD" for method, _, _ in mirror.requests)


def test_cli_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path), "--check", "cifar10"])
    assert "unknown dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path), "--download", "dtd", "eurosat", "--url", "http://127.0.0.1:9/x.zip"])
    assert "exactly one DATASET" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path)])
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "caltech-101.zip" in out and "not mirrored (licence)" in out
