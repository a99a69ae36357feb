"""clipdesk's probabilities equal an independent open_clip computation (the README's recipe).

The reference builds its own model with open_clip under the same seed our loader documents
(`RANDOM_SEED`), preprocesses with open_clip's own transform from `Image.open`, encodes, and takes
softmax(logit_scale.exp() · cosine). Nothing in the reference goes through clipdesk code.
"""

from __future__ import annotations

import json
import math

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from clipdesk.core.backends import TorchEncoder
from clipdesk.core.cache import NullCache
from clipdesk.core.engine import Engine
from clipdesk.core.errors import ModelLoadError
from clipdesk.core.jobs import run_job
from clipdesk.core.models import RANDOM_SEED, TINY_ARCH, load_model, register_configs

LABELS = ["cat", "dog", "car", "a red bicycle", "mountain lake"]


def reference_model(arch: str, state_dict: dict | None = None):
    register_configs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model.eval(), preprocess, open_clip.get_tokenizer(arch)


def reference_scores(model, preprocess, tokenizer, paths, labels, template="a photo of a {}."):
    """open_clip README: preprocess, encode, normalise, 100·cos → softmax (here logit_scale.exp())."""
    with torch.no_grad():
        images = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])
        image_features = model.encode_image(images)
        text_features = model.encode_text(tokenizer([template.format(label) for label in labels]))
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
        cosines = image_features @ text_features.T
        probs = (model.logit_scale.exp() * cosines).softmax(dim=-1)
    return probs.numpy(), cosines.numpy()


def clipdesk_scores(loaded, paths, labels, templates="photo"):
    engine = Engine(TorchEncoder(loaded), NullCache())
    result = run_job(engine.embed_job(paths, batch_size=2))
    assert not result.errors
    assert result.paths == list(paths)
    scores = engine.score(result.features, engine.label_set(labels, templates))
    return scores


def assert_matches(scores, probs, cosines):
    assert scores.labels == LABELS
    np.testing.assert_allclose(scores.probs, probs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(scores.cosines, cosines, atol=1e-5, rtol=0)
    np.testing.assert_allclose(scores.probs.sum(axis=1), 1.0, atol=1e-5)
    # The comparison only means something if the numbers are not all alike.
    assert np.ptp(scores.probs) > 0.02


@pytest.mark.parametrize("arch", ["ViT-B-32", TINY_ARCH])
def test_random_init_probabilities_equal_open_clip(arch, request, make_images):
    loaded = request.getfixturevalue("vitb32_loaded" if arch == "ViT-B-32" else "tiny_loaded")
    # Non-square PNGs of a size other than the input, so resize and centre crop both matter.
    paths = make_images(3, ".png", size=(150, 100))
    scores = clipdesk_scores(loaded, paths, LABELS)
    probs, cosines = reference_scores(*reference_model(arch), paths, LABELS)
    assert_matches(scores, probs, cosines)


def perturbed_state(arch: str) -> dict:
    """Weights unlike the seeded initialisation, so loading the file must really happen."""
    model, _, _ = reference_model(arch)
    generator = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
        model.logit_scale.fill_(math.log(40.0))
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def tiny_checkpoint_state():
    return perturbed_state(TINY_ARCH)


def save_checkpoint(state: dict, path):
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_checkpoint_loaded_by_path_equals_open_clip(suffix, tmp_path, make_images, tiny_checkpoint_state,
                                                     tiny_loaded):
    path = save_checkpoint(tiny_checkpoint_state, tmp_path / f"finetuned{suffix}")
    loaded = load_model(TINY_ARCH, str(path), "cpu")
    assert loaded.identity.startswith(f"{TINY_ARCH}/file-")
    assert TorchEncoder(loaded).logit_scale == pytest.approx(40.0, rel=1e-5)

    paths = make_images(3, ".png", size=(80, 120))
    scores = clipdesk_scores(loaded, paths, LABELS)
    probs, cosines = reference_scores(*reference_model(TINY_ARCH, tiny_checkpoint_state), paths, LABELS)
    assert_matches(scores, probs, cosines)

    seeded = clipdesk_scores(tiny_loaded, paths, LABELS)
    assert np.abs(seeded.probs - scores.probs).max() > 1e-2, "the checkpoint's weights were not used"


def test_finetuned_folder_loads_its_safetensors(tmp_path, make_images, tiny_checkpoint_state):
    folder = tmp_path / "my-model"
    folder.mkdir()
    save_checkpoint(tiny_checkpoint_state, folder / "model.safetensors")
    (folder / "metadata.json").write_text(json.dumps({"architecture": TINY_ARCH}))
    loaded = load_model(None, str(folder), "cpu")  # the folder names its architecture
    assert loaded.arch == TINY_ARCH
    with pytest.raises(ModelLoadError, match="leave out --model"):
        load_model("ViT-B-32", str(folder), "cpu")  # a contradiction is refused, never ignored

    paths = make_images(2, ".png")
    scores = clipdesk_scores(loaded, paths, LABELS)
    probs, cosines = reference_scores(*reference_model(TINY_ARCH, tiny_checkpoint_state), paths, LABELS)
    assert_matches(scores, probs, cosines)


def test_checkpoint_identity_follows_content_not_path(tmp_path, tiny_checkpoint_state):
    first = save_checkpoint(tiny_checkpoint_state, tmp_path / "a.safetensors")
    moved = tmp_path / "elsewhere" / "b.safetensors"
    moved.parent.mkdir()
    moved.write_bytes(first.read_bytes())
    other_state = dict(tiny_checkpoint_state, logit_scale=torch.tensor(1.0))
    other = save_checkpoint(other_state, tmp_path / "c.safetensors")
    identity = load_model(TINY_ARCH, str(first), "cpu").identity
    assert load_model(TINY_ARCH, str(moved), "cpu").identity == identity
    assert load_model(TINY_ARCH, str(other), "cpu").identity != identity
