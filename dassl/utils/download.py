"""A small, dependency-free HTTP(S) downloader for large files (CLIP weights, data archives).

Why not ``torch.hub`` or ``requests``: we want resume after an interrupted 900 MB download, an integrity check
that fails loudly, and a file that appears at its final path only when it is complete, with the standard
library alone. The recipe: stream into ``<dest>.part`` (resuming it with an HTTP ``Range`` request), hash while
writing, check the SHA256, then ``os.replace`` into place, so a half-written file never looks finished.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .errors import UserError

__all__ = ["ChecksumMismatchError", "DownloadError", "download_url", "sha256_of_file", "unreachable"]

_USER_AGENT = "promptkd-toolkit-downloader/1.0 (+urllib)"


class DownloadError(UserError, OSError):
    """A download that could not be made (no server answered, HTTP error, wrong hash); the message has the fix."""


class ChecksumMismatchError(DownloadError, ValueError):
    """The downloaded bytes do not hash to the expected SHA256."""


def unreachable(url: str, err: BaseException, dest: str | Path | None = None) -> DownloadError:
    """The error for a server that did not answer (offline, DNS, proxy, timeout): says so and how to go on."""
    reason = getattr(err, "reason", err)
    host = urllib.parse.urlsplit(url).netloc or url
    where = f" or copy the file to {dest} by other means" if dest is not None else ""
    return DownloadError(
        f"Cannot reach {host} to download {url} ({reason}): no network connection, a proxy that needs "
        f"configuring (HTTPS_PROXY), or the server is down. Fix: rerun when online (partial downloads resume){where}."
    )


def sha256_of_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Return the lowercase hex SHA256 of a file, read in chunks so large checkpoints never sit in memory."""
    return _hash_existing(Path(path), chunk_size).hexdigest()


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _open(url: str, start: int, timeout: float, dest: Path | None = None):
    """Open ``url``; ask for the bytes from ``start`` on when resuming. Returns the HTTP response.

    An HTTP error status propagates (callers explain 404s); no answer at all is a ``DownloadError``."""
    headers = {"User-Agent": _USER_AGENT}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise unreachable(url, err, dest) from err


def _hash_existing(path: Path, chunk_size: int) -> hashlib._Hash:
    """SHA256 state after reading ``path``; a resumed download keeps updating it with the new bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest


def download_url(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    *,
    resume: bool = True,
    progress: bool = True,
    chunk_size: int = 1 << 20,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` (always fetches; callers decide whether an existing file is good enough).

    The bytes go to ``<dest>.part`` first. With ``resume`` an existing ``.part`` is continued with
    ``Range: bytes=N-``; a server that answers 200 instead of 206 gets a clean restart. When ``sha256`` is given the
    result is checked before it is moved into place; on a mismatch the ``.part`` is deleted and a ``ValueError``
    names the file and both hashes. A truncated transfer keeps the ``.part`` so the next call resumes it.
    Returns ``dest`` as a ``Path``.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"download_url only fetches http(s) URLs, got {url!r}")
    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    expected = sha256.strip().lower() if sha256 else None

    start = part.stat().st_size if (resume and part.is_file()) else 0
    try:
        response = _open(url, start, timeout, dest)
    except urllib.error.HTTPError as err:
        if err.code != 416 or start == 0:
            raise
        # 416: nothing left to send from offset `start`; the .part may already be complete. Keep it only if
        # it verifies, otherwise start over.
        err.close()
        if expected is not None and sha256_of_file(part, chunk_size) == expected:
            os.replace(part, dest)
            return dest
        start = 0
        response = _open(url, 0, timeout, dest)

    if start > 0 and response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        if not content_range.startswith(f"bytes {start}-"):
            # a 206 for some other range than the one asked for: don't splice it in, fetch the whole file
            response.close()
            response = _open(url, 0, timeout, dest)

    with response:
        if start > 0 and response.status != 206:
            start = 0  # the server ignored the Range header and sends the whole file: restart cleanly
        length = response.headers.get("Content-Length")
        remaining = int(length) if length is not None and length.isdigit() else None
        total = start + remaining if remaining is not None else None

        digest = _hash_existing(part, chunk_size) if start > 0 else hashlib.sha256()
        received = 0
        with (
            open(part, "ab" if start > 0 else "wb") as out,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=dest.name,
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(chunk_size):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))

    if remaining is not None and received != remaining:
        raise DownloadError(
            f"download of {url} was cut short: got {received} of {remaining} bytes; "
            f"the partial file {part} is kept and the next call resumes it"
        )

    if expected is not None:
        actual = digest.hexdigest()
        if actual != expected:
            part.unlink(missing_ok=True)
            raise ChecksumMismatchError(
                f"SHA256 mismatch for {dest.name} (downloaded from {url}): expected {expected}, got {actual}. "
                f"The partial file {part} was deleted; check the URL/hash and download again."
            )
    os.replace(part, dest)
    return dest
