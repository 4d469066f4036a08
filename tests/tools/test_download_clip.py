"""dassl.utils.download and tools/download_clip.py against a local HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dassl.utils import download
from dassl.utils.download import download_url, sha256_of_file
from tools import download_clip

PAYLOAD = bytes((i * 7 + i // 256) % 256 for i in range(300_000))
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Server:
    base_url: str
    ranges: list[str | None] = field(default_factory=list)  # the Range header of every GET, in order
    bytes_sent: list[int] = field(default_factory=list)


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """/payload.bin honours `Range: bytes=N-` (206); /no-range.bin always answers 200 with everything;
        /wrong-range.bin answers a Range request with a 206 for the whole file (bytes 0-)."""

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path not in ("/payload.bin", "/no-range.bin", "/wrong-range.bin"):
                self.send_error(404)
                return
            header = self.headers.get("Range")
            server.ranges.append(header)
            start = 0
            if header and self.path == "/wrong-range.bin":
                self.send_response(206)
                self.send_header("Content-Range", f"bytes 0-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(PAYLOAD)
                server.bytes_sent.append(len(PAYLOAD))
                return
            if header and self.path == "/payload.bin":
                start = int(header.removeprefix("bytes=").removesuffix("-"))
                if start >= len(PAYLOAD):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
            else:
                self.send_response(200)
            body = PAYLOAD[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            server.bytes_sent.append(len(body))

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(base_url="")
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


# ---------------------------------------------------------------------------------------------------------------
# download_url
# ---------------------------------------------------------------------------------------------------------------


def test_full_download_is_verified_and_lands_atomically(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "sub" / "weights.pt"
    part = tmp_path / "sub" / "weights.pt.part"
    replaced: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def watching_replace(src, dst) -> None:
        # at the moment of the rename the final file does not exist yet and the .part holds everything
        assert not Path(dst).exists()
        assert Path(src).read_bytes() == PAYLOAD
        replaced.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(download.os, "replace", watching_replace)
    result = download_url(
        f"{server.base_url}/payload.bin", dest, PAYLOAD_SHA256.upper(), chunk_size=64 * 1024
    )
    assert result == dest
    assert replaced == [(part, dest)]
    assert dest.read_bytes() == PAYLOAD
    assert not part.exists()
    assert server.ranges == [None]


def test_partial_file_is_resumed_with_a_range_request(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"
    (tmp_path / "weights.pt.part").write_bytes(PAYLOAD[:123_456])
    download_url(f"{server.base_url}/payload.bin", dest, PAYLOAD_SHA256, progress=False, chunk_size=50_000)
    assert server.ranges == ["bytes=123456-"]
    assert server.bytes_sent == [len(PAYLOAD) - 123_456]
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "weights.pt.part").exists()


def test_server_without_range_support_restarts_cleanly(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"
    (tmp_path / "weights.pt.part").write_bytes(b"stale bytes from some other file")
    download_url(f"{server.base_url}/no-range.bin", dest, PAYLOAD_SHA256, progress=False)
    assert server.ranges == ["bytes=32-"]  # asked to resume, got 200, started over
    assert dest.read_bytes() == PAYLOAD


def test_206_for_another_range_is_not_spliced_in(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"
    (tmp_path / "weights.pt.part").write_bytes(PAYLOAD[:1000])
    download_url(f"{server.base_url}/wrong-range.bin", dest, PAYLOAD_SHA256, progress=False)
    assert server.ranges == ["bytes=1000-", None]  # refused the mismatched 206, fetched the whole file
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_answered_416_is_kept_if_it_verifies(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"
    (tmp_path / "weights.pt.part").write_bytes(PAYLOAD)
    download_url(f"{server.base_url}/payload.bin", dest, PAYLOAD_SHA256, progress=False)
    assert server.ranges == [f"bytes={len(PAYLOAD)}-"]
    assert server.bytes_sent == []
    assert dest.read_bytes() == PAYLOAD


def test_wrong_sha256_raises_and_leaves_no_file(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "weights.pt"
    wrong = "0" * 64
    with pytest.raises(ValueError) as info:
        download_url(f"{server.base_url}/payload.bin", dest, wrong, progress=False)
    message = str(info.value)
    assert "weights.pt" in message
    assert f"expected {wrong}" in message
    assert f"got {PAYLOAD_SHA256}" in message
    assert not dest.exists()
    assert not (tmp_path / "weights.pt.part").exists()


def test_only_http_urls_and_sha256_of_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="http"):
        download_url("file:///etc/hostname", tmp_path / "x")
    sample = tmp_path / "sample.bin"
    sample.write_bytes(PAYLOAD)
    assert sha256_of_file(sample, chunk_size=4096) == PAYLOAD_SHA256


# ---------------------------------------------------------------------------------------------------------------
# tools/download_clip.py
# ---------------------------------------------------------------------------------------------------------------


def test_cli_downloads_into_cache_under_openai_name(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    argv = ["ViT-B/16", "--url", f"{server.base_url}/payload.bin", "--sha256", PAYLOAD_SHA256]
    argv += ["--cache-dir", str(cache), "--no-progress"]
    assert download_clip.main(argv) == 0
    target = cache / "ViT-B-16.pt"
    assert target.read_bytes() == PAYLOAD
    assert not (cache / "ViT-B-16.pt.part").exists()
    assert PAYLOAD_SHA256 in (cache / "ViT-B-16.pt.sha256-ok").read_text()
    assert f"ViT-B/16: {target} (downloaded, SHA256 verified)" in capsys.readouterr().out

    # second run: present and verified, so nothing is fetched
    assert download_clip.main(argv) == 0
    assert f"ViT-B/16: {target} (already present, verified)" in capsys.readouterr().out
    assert server.ranges == [None]


def test_cli_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        download_clip.main(
            ["ViT-B/16", "ViT-L/14", "--url", "http://127.0.0.1:9/x.pt", "--cache-dir", str(tmp_path)]
        )
    assert info.value.code == 2
    assert "exactly one NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        download_clip.main(["ViT-H/14", "--cache-dir", str(tmp_path)])
    assert "known names" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        download_clip.main(["--cache-dir", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []


def test_cli_list_shows_cache_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ViT-L-14.pt").write_bytes(b"something")
    assert download_clip.main(["--list", "--cache-dir", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(lines) == {"RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14",
                          "ViT-L/14@336px"}  # fmt: skip
    assert lines["ViT-B/16"].endswith("missing")
    assert "present, not verified yet" in lines["ViT-L/14"]


def test_script_runs_from_repo_root(repo_root: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "tools/download_clip.py", "--list", "--cache-dir", str(tmp_path)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "ViT-L/14@336px" in result.stdout and "ViT-L-14-336px.pt" in result.stdout
