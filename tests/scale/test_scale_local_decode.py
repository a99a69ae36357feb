"""`clipdesk index` without Ray: images decode on a thread pool, ahead of the encoder (issue 24:
decoding in the encoder's own thread made `index` 1.7× slower than `search` over the same folder)."""

from __future__ import annotations

import threading
import time

from scale_helpers import run_index

from clipdesk.scale.pipeline import Decoder


def test_local_index_decodes_on_threads_while_the_encoder_works(demo_engine, small_folder, tmp_path, monkeypatch):
    events: list[tuple[str, str, int]] = []  # (what, thread name, images)
    lock = threading.Lock()
    decode, encode = Decoder.__call__, demo_engine.encoder.encode_image

    def recording_decode(self, batch):
        with lock:
            events.append(("decode", threading.current_thread().name, len(batch["path"])))
        return decode(self, batch)

    def slow_encode(pixels):  # a slow encoder: the decoders have time to run ahead, or not
        time.sleep(0.5)
        out = encode(pixels)
        with lock:
            events.append(("encoded", threading.current_thread().name, len(pixels)))
        return out

    monkeypatch.setattr(Decoder, "__call__", recording_decode)
    monkeypatch.setattr(demo_engine.encoder, "encode_image", slow_encode)
    result = run_index(demo_engine, [small_folder], tmp_path / "idx", shard_size=1000, batch_size=8)

    assert result.complete and result.images == 41 and result.failed == 1
    decodes = [event for event in events if event[0] == "decode"]
    assert sum(n for _, _, n in decodes) == 41  # every image decoded exactly once
    assert all(name.startswith("decode") for _, name, _ in decodes)  # never in the encoder's thread
    first_encoded = next(i for i, event in enumerate(events) if event[0] == "encoded")
    ahead = sum(n for what, _, n in events[:first_encoded] if what == "decode")
    assert ahead >= 16, f"only {ahead} images decoded by the time the first batch of 8 was encoded"


def test_local_index_opens_the_image_session_before_the_first_image_decodes(demo_engine, small_folder, tmp_path,
                                                                              monkeypatch):
    """An ONNX encoder's image session takes ~0.6 s to open: asked for at the start (`warm_up_images`,
    as core's embed loop does at its first cache miss) it opens while the first batch decodes; asked
    for at the first encode, every image of that batch waited for it."""
    events: list[str] = []
    decode = Decoder.__call__

    def recording_decode(self, batch):
        events.append("decode")
        return decode(self, batch)

    monkeypatch.setattr(Decoder, "__call__", recording_decode)
    monkeypatch.setattr(demo_engine.encoder, "warm_up_images", lambda: events.append("warm-up"), raising=False)
    result = run_index(demo_engine, [small_folder], tmp_path / "idx", shard_size=1000, batch_size=8)
    assert result.complete
    assert events.count("warm-up") == 1 and events[0] == "warm-up" and events.count("decode") == 41
