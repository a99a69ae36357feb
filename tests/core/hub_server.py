"""A local stand-in for the Hugging Face hub, so downloads are tested with real HTTP transfers.

It answers what `huggingface_hub.hf_hub_download` asks (read from its file_download.py):
- HEAD `/{repo_id}/resolve/{revision}/{filename}`: like the hub for an LFS file, a 302 whose
  headers carry the metadata (`X-Repo-Commit`, `X-Linked-Etag` = the sha256, `X-Linked-Size`) and
  whose `Location` is a "CDN" URL on another origin (`localhost` instead of `127.0.0.1`), so the
  client stops at the redirect and downloads from the Location, as it does from the real CDN;
- GET on that CDN URL: the bytes, with `Content-Length` and `Range` support (the client resumes
  with a Range after a dropped connection), optionally throttled (`delay` seconds after each
  `chunk` bytes) so a cancel can land mid-transfer;
- 404 with `X-Error-Code: EntryNotFound` for a file it does not hold (the client then tries the
  next file name, as open_clip's `.bin` fallback does).
The endpoint is read by huggingface_hub at import (`constants.ENDPOINT`), so in-process tests patch
the constants (`point_hub_at`); a subprocess gets `HF_ENDPOINT` in its environment.
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ARCH = "clipdesk-tiny"
TAG = "hubtest"
REPO_ID = "clipdesk-tests/tiny-hub"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
WEIGHTS_NAME = "open_clip_model.safetensors"
RESOURCES = Path(__file__).resolve().parents[2] / "resources"


class HubServer:
    """Serves `files[(repo_id, filename)] = bytes` on 127.0.0.1 (hub) and localhost (CDN)."""

    def __init__(self, delay: float = 0.0, chunk: int = 64 * 1024) -> None:
        self.files: dict[tuple[str, str], bytes] = {}
        self.delay = delay  # seconds slept after each `chunk` bytes of a GET body
        self.chunk = chunk
        self.requests: list[tuple[str, str]] = []
        self.proxied: list[str] = []  # absolute URLs asked of it as an HTTP proxy
        self.aborted = threading.Event()  # a client closed a GET before its end
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add(self, repo_id: str, filename: str, data: bytes) -> None:
        self.files[(repo_id, filename)] = data

    def transfers(self) -> int:
        """Bodies of weights requested (huggingface_hub also asks the endpoint for other things)."""
        return sum(method == "GET" and path.startswith("/cdn/") for method, path in self.requests)

    def close(self) -> None:
        self.delay = 0.0  # a throttled body still being sent finishes quickly
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HubServer:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def blob(self, sha: str) -> bytes | None:
        return next((data for data in self.files.values() if hashlib.sha256(data).hexdigest() == sha), None)


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args) -> None:  # quiet test output
            pass

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self._answer(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            if self.path.startswith("http://"):  # asked as a proxy: the absolute URL's path is ours
                hub.proxied.append(self.path)
                self.path = "/" + self.path.split("/", 3)[3]
            hub.requests.append((self.command, self.path))
            if self.path.startswith("/cdn/"):
                self._send_blob(self.path.removeprefix("/cdn/"), body)
                return
            head, sep, rest = self.path.lstrip("/").partition("/resolve/")
            revision, _, filename = rest.partition("/")
            data = hub.files.get((head, filename)) if sep else None
            if data is None:
                self._empty(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT,
                                  "X-Error-Message": "Entry not found"})
                return
            sha = hashlib.sha256(data).hexdigest()
            self._empty(302, {
                "Location": f"http://localhost:{hub.port}/cdn/{sha}",
                "X-Repo-Commit": COMMIT,
                "X-Linked-Etag": f'"{sha}"',
                "X-Linked-Size": str(len(data)),
                "ETag": f'"{hashlib.sha1(data).hexdigest()}"',  # the git pointer's, ignored for LFS
            })

        def _empty(self, status: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send_blob(self, sha: str, body: bool) -> None:
            data = hub.blob(sha)
            if data is None:
                self._empty(404, {})
                return
            start = 0
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes=") and ranged[6:].split("-")[0].isdigit():
                start = int(ranged[6:].split("-")[0])
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("ETag", f'"{sha}"')
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if body:
                self._stream(io.BytesIO(data[start:]))

        def _stream(self, source: io.BytesIO) -> None:
            try:
                while piece := source.read(hub.chunk):
                    self.wfile.write(piece)
                    self.wfile.flush()
                    if hub.delay:
                        time.sleep(hub.delay)
            except (BrokenPipeError, ConnectionResetError):
                hub.aborted.set()  # the client went away (a cancelled download)
                self.close_connection = True

    return Handler


def point_hub_at(monkeypatch, url: str) -> None:
    """Aim the imported huggingface_hub at `url` and let it go online (tests default to offline).

    `constants.ENDPOINT` and the URL template are computed at import time from HF_ENDPOINT, so
    setting the environment variable alone would not reach an already imported library."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", url)  # for subprocesses
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):  # a machine's proxy would not reach us
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def register_tag(monkeypatch, hub_path: str = REPO_ID + "/", url: str = "") -> None:
    """Make `clipdesk-tiny` / `hubtest` a pretrained tag of open_clip whose weights live on the hub
    (or, `hub_path` empty, at a plain `url`). open_clip has no public call to add a pretrained tag;
    its registry is a module-level dict."""
    import open_clip.pretrained as pretrained

    from clipdesk.core.models import register_configs

    register_configs()
    monkeypatch.setitem(pretrained._PRETRAINED, ARCH, {TAG: tag_cfg(hub_path, url)})


def tag_cfg(hub_path: str = REPO_ID + "/", url: str = "") -> dict:
    return {"url": url, "hf_hub": hub_path, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
            "interpolation": "bicubic", "resize_mode": "shortest"}


def blob_url(hub: HubServer, data: bytes) -> str:
    """The plain URL of `data` on the server's CDN side (for a tag with a `url` and no `hf_hub`)."""
    return f"http://localhost:{hub.port}/cdn/{hashlib.sha256(data).hexdigest()}"


def tiny_weights(seed: int = 7) -> tuple[bytes, dict]:
    """A real open_clip state dict of the tiny architecture (~13 MB) as safetensors bytes, with
    the tensors it holds (for checking what a loaded model got)."""
    import open_clip
    import torch
    from safetensors.torch import save

    from clipdesk.core.models import quiet_open_clip

    open_clip.add_model_config(RESOURCES / "model_configs")
    with torch.random.fork_rng(devices=[]), quiet_open_clip():
        torch.manual_seed(seed)
        model = open_clip.create_model(ARCH, pretrained=None)
    state = {name: tensor.detach().clone().contiguous() for name, tensor in model.state_dict().items()}
    return save(state), state


def closed_port_url() -> str:
    """The URL of a port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
