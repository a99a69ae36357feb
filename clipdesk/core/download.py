"""Fetch open_clip pretrained weights into clipdesk's cache, reporting progress as a job.

open_clip's registry says where a tag's weights live; huggingface_hub does the transfer (with its
resume and integrity checks) and tells us each chunk through a tqdm class we hand it, so the GUI's
progress dialog, the CLI's bar and cancel all work the same way.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

from .atomic import atomic_path
from .errors import Cancelled, ModelLoadError
from .jobs import CancelToken, Job, Progress
from .paths import weights_dir

HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
POLL_S = 0.1  # how often a waiting job looks at its cancel token
# huggingface_hub reads the body in 10 MiB pieces and calls the progress hook once a piece: on a
# 1 MB/s line that is a progress step, and a chance to stop, every 10 s. 1 MiB pieces cost nothing.
CHUNK_BYTES = 1 << 20


def _hf_location(arch: str, tag: str) -> tuple[str, tuple[str, ...]] | None:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    hub = cfg.get("hf_hub", "") if cfg else ""
    if not hub:
        return None
    if hub.endswith("/"):  # open_clip's convention: a bare repo holds the default file names
        return hub.rstrip("/"), HF_FILES
    repo_id, filename = os.path.split(hub)
    return repo_id, (filename,)


def cached_weights(arch: str, tag: str) -> Path | None:
    """The local file for (arch, tag) if it was downloaded before, without touching the network."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag) or {}
    return cached_weights_at(cfg.get("hf_hub", ""), cfg.get("url", ""))


def cached_weights_at(hub: str, url: str) -> Path | None:
    """`cached_weights` from a registry entry's `hf_hub`/`url` (the catalog's memo: no torch)."""
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filenames = (hub.rstrip("/"), HF_FILES) if hub.endswith("/") else (
            os.path.split(hub)[0], (os.path.split(hub)[1],))
        for filename in filenames:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=weights_dir())
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
        return None
    target = weights_dir() / os.path.basename(url) if url else None
    return target if target is not None and target.is_file() else None


def offline_message(arch: str, tag: str, reason: object = "") -> str:
    why = f" ({reason})" if reason else ""
    return (
        f"Could not download the weights for {arch} '{tag}'{why}, and they are not in the cache "
        f"folder {weights_dir()}. Connect to the internet once, or load a local checkpoint with "
        f"`--pretrained FILE` (the GUI: Model › Load checkpoint…), or try the built-in demo model "
        f"with `--model demo`."
    )


def download_job(arch: str, tag: str, cancel: CancelToken | None = None) -> Job[Path]:
    """Download (arch, tag) weights unless cached; yields byte progress, returns the file path."""
    existing = cached_weights(arch, tag)
    if existing is not None:
        return existing
    reason = _offline_reason(_server(arch, tag))
    if reason:
        raise ModelLoadError(offline_message(arch, tag, reason))
    events: queue.Queue = queue.Queue()
    result: dict[str, object] = {}
    stop = threading.Event()  # set when this job ends early: the transfer thread then gives up too
    thread = threading.Thread(
        target=_download_thread, args=(arch, tag, events, result, _StopSignals(cancel, stop)), daemon=True
    )
    thread.start()
    done, total = 0, None
    started = time.monotonic()  # each step's rate is over the whole transfer, not since the step was made
    try:
        while thread.is_alive() or not events.empty():
            # A cancel lands here within one poll, not at the transfer's next chunk (which a stalled
            # connection may never send); the thread then aborts at its next chunk and
            # huggingface_hub deletes its temporary file, so no partial file is left as the weights.
            if cancel is not None and cancel.cancelled:
                raise Cancelled("Download cancelled.")
            try:
                kind, value = events.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if kind == "total":
                total = value
            elif kind == "bytes":
                done += value
                yield Progress(done, total, f"Downloading {arch} {tag}", unit="B", started=started)
    finally:
        stop.set()
    thread.join()
    if "error" in result:
        error = result["error"]
        if isinstance(error, Cancelled):
            raise error
        raise ModelLoadError(offline_message(arch, tag, _short(error)))
    return Path(str(result["path"]))


class _StopSignals:
    """What the transfer thread obeys: the user's cancel, or the job having ended without it."""

    def __init__(self, cancel: CancelToken | None, stop: threading.Event) -> None:
        self.cancel, self.stop = cancel, stop

    @property
    def stopped(self) -> bool:
        return self.stop.is_set() or (self.cancel is not None and self.cancel.cancelled)


def _server(arch: str, tag: str) -> str:
    """The URL the weights come from: the hub (or the mirror HF_ENDPOINT names), else the tag's URL."""
    import open_clip
    from huggingface_hub import constants

    if _hf_location(arch, tag) is not None:
        return constants.ENDPOINT
    return (open_clip.get_pretrained_cfg(arch, tag) or {}).get("url", "") or constants.ENDPOINT


def _offline_reason(server: str) -> str:
    """Fail in a second rather than after huggingface_hub's minute of retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return "offline mode is set (HF_HUB_OFFLINE)"
    endpoint = urlparse(server)
    host = endpoint.hostname or "huggingface.co"
    if _proxied(endpoint.scheme or "https", host):
        return ""  # only the proxy may be reachable from here: let the transfer itself try
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)  # a mirror's own port
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError:
        return f"no connection to {endpoint.netloc or host}"
    return ""


def _proxied(scheme: str, host: str) -> bool:
    """A proxy is configured for this server (HTTPS_PROXY and friends, as httpx reads them)."""
    from urllib.request import getproxies, proxy_bypass

    return bool(getproxies().get(scheme)) and not proxy_bypass(host)


def _short(error: object) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__


def _progress_class(events: queue.Queue, stop: _StopSignals):
    from tqdm.auto import tqdm

    class QueueTqdm(tqdm):
        """Forwards every chunk to the job's queue; raising here aborts the transfer on cancel."""

        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            if kwargs.get("total"):
                events.put(("total", int(kwargs["total"])))

        def update(self, n=1):
            # Raised before huggingface_hub writes this chunk: the temporary file is never whole,
            # and huggingface_hub deletes it on the way out.
            if stop.stopped:
                raise Cancelled("Download cancelled.")
            events.put(("bytes", int(n or 0)))
            return super().update(n)

    return QueueTqdm


def _download_thread(arch, tag, events, result, stop: _StopSignals) -> None:
    try:
        location = _hf_location(arch, tag)
        if location is None:
            import open_clip

            url = open_clip.get_pretrained_cfg(arch, tag)["url"]
            result["path"] = _download_url(url, events, stop)
            return
        from huggingface_hub import constants, hf_hub_download

        constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, CHUNK_BYTES)
        repo_id, filenames = location
        last_error: Exception | None = None
        for filename in filenames:
            try:
                result["path"] = hf_hub_download(
                    repo_id, filename, cache_dir=weights_dir(),
                    tqdm_class=_progress_class(events, stop),
                )
                return
            except Cancelled:
                raise
            except Exception as error:  # noqa: BLE001 - try the next file name, report the last
                last_error = error
        result["error"] = last_error
    except Exception as error:  # noqa: BLE001 - surfaced by the job as one sentence
        result["error"] = error


def _download_url(url: str, events: queue.Queue, stop: _StopSignals) -> str:
    """A tag with only a plain URL (open_clip's older entries). Not open_clip's own downloader: it
    writes the final file name as it goes, so an interrupted or cancelled transfer would be taken
    for the weights next time (`cached_weights` looks for that name); nor can it be cancelled.
    Here the bytes go to a temporary file that replaces the target only once whole."""
    import urllib.request

    target = weights_dir() / os.path.basename(url)
    with urllib.request.urlopen(url, timeout=30) as source, atomic_path(target) as temp:
        size = int(source.headers.get("Content-Length") or 0) or None
        if size:
            events.put(("total", size))
        received = 0
        with open(temp, "wb") as out:
            while piece := source.read(CHUNK_BYTES):
                if stop.stopped:
                    raise Cancelled("Download cancelled.")
                out.write(piece)
                received += len(piece)
                events.put(("bytes", len(piece)))
        if size is not None and received != size:
            raise OSError(f"the transfer ended after {received} of {size} bytes")
    return str(target)
