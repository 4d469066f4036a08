"""Download OpenAI CLIP checkpoints into the CLIP cache dir, SHA256-checked, with progress and resume.

    python tools/download_clip.py ViT-B/16 ViT-L/14      # into $CLIP_CACHE_DIR or ~/.cache/clip
    python tools/download_clip.py --list                 # known names and what the cache holds

Files land under OpenAI's names (``ViT-B-16.pt``), which is where ``trainers.backbone.load_clip`` looks for them.
A file that is already present and verified is skipped; a present file with the wrong hash is replaced.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python tools/download_clip.py` from anywhere
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import urllib.error  # noqa: E402

from dassl.utils.download import DownloadError, download_url  # noqa: E402
from dassl.utils.errors import run_entry_point  # noqa: E402
from trainers.backbone import (  # noqa: E402
    CACHE_ENV_VAR,
    OPENAI_CLIP_URLS,
    canonical_clip_name,
    checkpoint_filename,
    clip_cache_dir,
    expected_sha256,
    verify_checkpoint_file,
    write_verified_marker,
)

__all__ = ["download_clip", "main"]


def download_clip(
    name: str,
    cache_dir: str | Path | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> tuple[Path, bool]:
    """Make sure ``<cache dir>/<OpenAI file name>`` holds the verified checkpoint for ``name``.

    ``url``/``sha256`` override OpenAI's URL and hash (mirrors, tests). Returns ``(path, downloaded)``.
    """
    cache = Path(cache_dir).expanduser() if cache_dir else clip_cache_dir()
    dest = cache / checkpoint_filename(name)
    digest = (sha256 or expected_sha256(name)).lower()
    if verify_checkpoint_file(dest, digest):
        return dest, False
    source = url or OPENAI_CLIP_URLS[canonical_clip_name(name)]
    try:
        download_url(source, dest, digest, progress=progress)
    except urllib.error.HTTPError as err:
        raise DownloadError(
            f"Download of {name} from {source} failed: HTTP {err.code} {err.reason}. Fix: pass a mirror with "
            f"--url URL (and --sha256 HEX if its file differs), or copy {dest.name} into {cache} by other means."
        ) from err
    write_verified_marker(dest, digest)  # download_url just checked the hash: don't hash 900 MB again on load
    return dest, True


def _print_listing(cache: Path) -> None:
    print(f"CLIP cache dir: {cache}")
    for name in OPENAI_CLIP_URLS:
        path = cache / checkpoint_filename(name)
        if not path.is_file():
            state = "missing"
        elif verify_checkpoint_file(path, expected_sha256(name), hash_if_needed=False):
            state = "present, verified"
        else:
            state = "present, not verified yet (checked on first load)"
        print(f"  {name:<16} {path.name:<20} {state}")


def main(argv: list[str] | None = None) -> int:
    """The CLI; a failed download is one ``Error:`` message (exit 2), not a traceback (``PROMPTKD_DEBUG=1``)."""
    return run_entry_point(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(OPENAI_CLIP_URLS)}")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"target dir (default: ${CACHE_ENV_VAR} or ~/.cache/clip)",
    )
    parser.add_argument(
        "--url", default=None, help="download from this URL instead (a mirror); one NAME only"
    )
    parser.add_argument("--sha256", default=None, help="expected SHA256 instead of OpenAI's; one NAME only")
    parser.add_argument("--list", action="store_true", help="list known names and what the cache dir holds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    cache = args.cache_dir.expanduser() if args.cache_dir else clip_cache_dir()
    if args.list:
        _print_listing(cache)
        return 0
    if not args.names:
        parser.error("give at least one NAME (or --list)")
    if (args.url or args.sha256) and len(args.names) != 1:
        parser.error("--url and --sha256 apply to exactly one NAME")
    for name in args.names:
        try:
            canonical_clip_name(name)
        except ValueError as err:
            parser.error(str(err))

    for name in args.names:
        path, downloaded = download_clip(
            name, cache, url=args.url, sha256=args.sha256, progress=not args.no_progress
        )
        print(
            f"{name}: {path} ({'downloaded, SHA256 verified' if downloaded else 'already present, verified'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
