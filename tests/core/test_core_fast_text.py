"""The trimmed text tower gives open_clip's own text vectors, for every prompt length."""

from __future__ import annotations

import pytest
import torch

from clipdesk.core.fast_text import encode_text
from clipdesk.core.models import TINY_ARCH, load_model

PROMPTS = ["a photo of a cat.", "猫", "кошка на диване", "x", "a " + "very " * 90 + "long prompt", ""]


@pytest.mark.parametrize("arch", ["tiny", "vitb32"])
@pytest.mark.parametrize("normalize", [True, False])
def test_equals_open_clip_encode_text(arch, normalize, request):
    loaded = request.getfixturevalue(f"{arch}_loaded")
    for batch in (PROMPTS, PROMPTS[:2], PROMPTS[3:4], PROMPTS[4:5]):
        tokens = loaded.tokenizer(batch)
        with torch.inference_mode():
            expected = loaded.model.encode_text(tokens, normalize=normalize)
            got = encode_text(loaded.model, tokens, normalize=normalize)
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)


def test_short_prompts_run_on_fewer_positions(tiny_loaded, monkeypatch):
    seen = []
    transformer = tiny_loaded.model.transformer
    original = type(transformer).forward

    def spy(self, x, *args, **kwargs):
        seen.append(x.shape[1])
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(type(transformer), "forward", spy)
    tokens = tiny_loaded.tokenizer(["a photo of a cat."])
    with torch.inference_mode():
        encode_text(tiny_loaded.model, tokens)
    assert seen == [int(tokens.argmax(-1)) + 1] and seen[0] < 77


def test_non_causal_model_takes_open_clips_path(monkeypatch):
    # A model of its own: replacing a buffer on the session-wide model would leak into other tests.
    own = load_model(TINY_ARCH, "none", "cpu")
    calls = []
    model = own.model
    model.attn_mask = torch.zeros(77, 77)
    original = type(model).encode_text
    monkeypatch.setattr(type(model), "encode_text",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    with torch.inference_mode():
        encode_text(model, own.tokenizer(["a cat"]))
    assert calls == [1]
