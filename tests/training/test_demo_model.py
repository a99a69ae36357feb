"""The shipped demo CLIP, through the app's own path (load_model → TorchEncoder → Engine).

Accuracy is measured on images generated fresh for this test (a seed the build never used), so
a change that breaks the weights, the preprocessing, the tokenizer or the scoring fails here.
Thresholds sit below the published numbers (README) by a margin for sampling noise on a small
sample: a broken path drops to chance (1/64), far below them.
"""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch

from clipdesk.core import demo
from clipdesk.core.models import load_model
from training import synthetic
from training.build_demo import write_samples
from training.evaluate_demo import evaluate, open_demo_engine

TEST_SEED = 4242  # not the build's seeds (0, 1, 2) nor the README's (12345)


@pytest.fixture(scope="module")
def engine():
    return open_demo_engine("cpu")


@pytest.fixture(scope="module")
def report(engine, tmp_path_factory):
    return evaluate(engine, seed=TEST_SEED, per_pair=4, search_gallery=3,
                    folder=tmp_path_factory.mktemp("demo-eval"))


def test_shipped_files_are_small_and_describe_the_model():
    folder = demo.demo_model_dir()
    weights = folder / "model.safetensors"
    assert weights.stat().st_size <= 20 * 1024 * 1024
    meta = demo.demo_metadata()
    assert meta["architecture"] == "clipdesk-demo" and meta["method"] == "captions"
    assert meta["class_names"] == synthetic.class_names() and len(meta["class_names"]) == 64
    assert meta["colours"] == list(synthetic.COLOUR_NAMES) and meta["shapes"] == list(synthetic.SHAPES)
    assert meta["held_out"] == [f"{c} {s}" for c, s in synthetic.HELD_OUT]


@pytest.mark.parametrize("arch, pretrained", [("demo", "demo"), ("demo", None), (None, "demo"),
                                              ("clipdesk-demo", "demo")])
def test_demo_routes_to_the_shipped_folder(arch, pretrained):
    loaded = load_model(arch, pretrained, "cpu")
    assert loaded.arch == "clipdesk-demo"
    assert loaded.image_size == 64 and loaded.context_length == 24
    assert loaded.class_names == synthetic.class_names()


def test_demo_alias_never_overrides_what_was_asked():
    """`--model demo --pretrained none` is the demo architecture with random weights, and another
    architecture with `--pretrained demo` is a contradiction (issue 9 §3, issue 10 item 11)."""
    from clipdesk.core.errors import ModelLoadError

    random = load_model("demo", "none", "cpu")
    assert random.arch == "clipdesk-demo" and random.class_names == [] and random.pretrained == "none"
    with pytest.raises(ModelLoadError, match="leave out --model"):
        load_model("clipdesk-tiny", "demo", "cpu")


def test_weights_load_exactly(engine):
    from safetensors.torch import load_file

    stored = load_file(str(demo.demo_model_dir() / "model.safetensors"))
    state = engine.loaded.model.state_dict()
    assert set(stored) == set(state)
    for name, tensor in stored.items():
        assert torch.equal(state[name].float(), tensor.float()), name


def test_accuracy_on_fresh_images_seen_and_held_out(report):
    assert report.n_seen == 52 * 4 and report.n_held_out == 12 * 4
    assert report.seen >= 0.95, report.as_dict()
    assert report.held_out >= 0.70, report.as_dict()  # zero-shot: never seen in training


def test_text_search_finds_held_out_combinations(report):
    assert report.search_queries == 12
    assert report.search_top1 >= 9 / 12, report.as_dict()  # "most queries", with slack


def test_scores_match_an_independent_computation(engine, tmp_path):
    """The Engine's scores equal softmax(scale · cos) computed from the raw open_clip model."""
    from PIL import Image

    scene = synthetic.sample_scene(np.random.default_rng(7), [("blue", "star")], n_objects=1)
    path = tmp_path / "star.png"
    synthetic.render(scene, 64).save(path)
    from clipdesk.core.jobs import run_job

    features = run_job(engine.embed_job([path])).features
    label_set = engine.label_set(["blue star", "red circle", "green heart"], "none")
    probs = np.asarray(engine.score(features, label_set).probs)[0]
    model, loaded = engine.loaded.model, engine.loaded
    with torch.no_grad():
        image = model.encode_image(loaded.preprocess(Image.open(path).convert("RGB"))[None], normalize=True)
        text = model.encode_text(loaded.tokenizer(["blue star", "red circle", "green heart"]), normalize=True)
        expected = (model.logit_scale.exp() * image @ text.T).softmax(-1)[0].numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-5)
    assert probs.argmax() == 0


def test_sample_images_are_classified(engine, tmp_path):
    """What `main.py --demo` shows: the samples (drawn larger than 64 px) get their own label."""
    from clipdesk.core.jobs import run_job

    paths = demo.demo_sample_images()
    assert len(paths) == len(demo.SAMPLE_SCENES) and all(p.is_file() for p in paths)
    assert [p.name for p in write_samples(tmp_path / "samples")] == [p.name for p in paths]
    assert all((tmp_path / "samples" / p.name).read_bytes() == p.read_bytes() for p in paths)  # shipped = rebuilt
    features = run_job(engine.embed_job(paths)).features
    labels = demo.demo_labels()
    scores = np.asarray(engine.score(features, engine.label_set(labels, demo.demo_templates())).probs)
    truth = [labels.index(f"{c} {s}") for c, s in demo.SAMPLE_SCENES]
    assert (scores.argmax(1) == truth).mean() >= 10 / 12
    assert demo.demo_labels(limit=5) == [f"{c} {s}" for c, s in demo.SAMPLE_SCENES[:5]]


def raw_open_clip_cosines(paths, labels: list[str]) -> np.ndarray:
    """Cosines computed from the shipped files with open_clip alone (its own model factory, eval
    transform and tokenizer), not through clipdesk's loader, encoder or engine."""
    import open_clip
    from PIL import Image
    from safetensors.torch import load_file

    folder = demo.demo_model_dir()
    open_clip.add_model_config(folder.parents[1] / "model_configs")
    model = open_clip.create_model("clipdesk-demo", pretrained=None)
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    model.eval()
    transform = open_clip.image_transform(64, is_train=False)
    tokenizer = open_clip.get_tokenizer("clipdesk-demo")
    with torch.no_grad():
        images = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
        image = model.encode_image(images, normalize=True)
        text = model.encode_text(tokenizer(labels), normalize=True)
    return (image @ text.T).numpy()


def test_cli_classify_with_the_demo_model():
    """The CLI names what each sample shows, out of all 64 labels (a random-weights model gets one
    of four right by chance 1 time in 16, all four about once in 17 million), and its cosines are
    those of the raw open_clip model."""
    from clipdesk.cli import main

    paths = demo.demo_sample_images()[:4]
    drawn = [f"{c} {s}" for c, s in demo.SAMPLE_SCENES[:4]]  # what write_samples drew in each file
    assert all(name in p.name for name, p in zip([d.replace(" ", "-") for d in drawn], paths))
    labels = synthetic.class_names()
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["classify", *map(str, paths), "--model", "demo", "--backend", "torch",
                     "--labels", ",".join(labels), "--templates", "none",
                     "--format", "json", "--device", "cpu", "--no-cache"])
    assert code == 0
    rows = json.loads(out.getvalue())
    assert [row["label"] for row in rows] == drawn
    expected = raw_open_clip_cosines(paths, labels)
    got = np.array([[row["cosines"][name] for name in labels] for row in rows])
    np.testing.assert_allclose(got, expected, atol=2e-5)


# -- the generator ------------------------------------------------------------------------------
def test_generator_is_deterministic():
    def draw(seed):
        rng = np.random.default_rng(seed)
        scenes = [synthetic.training_scene(rng) for _ in range(20)]
        captions = [synthetic.caption(s, rng) for s in scenes]
        return [np.asarray(synthetic.render(s)) for s in scenes], captions

    images_a, captions_a = draw(3)
    images_b, captions_b = draw(3)
    images_c, _ = draw(4)
    assert captions_a == captions_b
    assert all(np.array_equal(a, b) for a, b in zip(images_a, images_b))
    assert not all(np.array_equal(a, c) for a, c in zip(images_a, images_c))


def test_held_out_combinations_never_appear_in_training():
    held_colours = {c for c, _ in synthetic.HELD_OUT}
    held_shapes = {s for _, s in synthetic.HELD_OUT}
    # Every colour and shape is still trained, with other partners.
    assert held_colours <= set(synthetic.COLOUR_NAMES) and held_shapes <= set(synthetic.SHAPES)
    assert {c for c, _ in synthetic.SEEN_PAIRS} == set(synthetic.COLOUR_NAMES)
    assert {s for _, s in synthetic.SEEN_PAIRS} == set(synthetic.SHAPES)
    patterns = [re.compile(rf"\b{c} {s}\b|\b{s} is {c}\b|\b{s} coloured {c}\b")
                for c, s in synthetic.HELD_OUT]
    rng = np.random.default_rng(0)
    seen_pairs = set()
    for _ in range(3000):
        scene = synthetic.training_scene(rng)
        seen_pairs.update(scene.pairs)
        for _ in range(3):
            text = synthetic.caption(scene, rng)
            assert not any(p.search(text) for p in patterns), text
    assert not seen_pairs & set(synthetic.HELD_OUT)
    assert seen_pairs == set(synthetic.SEEN_PAIRS)


def test_the_build_trains_on_training_scenes_only():
    """build_demo's pool comes from `training_scene`, and its captions from those scenes."""
    from training.build_demo import CaptionedShapes
    from training.demo_pixels import render_pool

    rng = np.random.default_rng(5)
    scenes = [synthetic.training_scene(rng) for _ in range(8)]
    tokenizer = load_model("demo", "demo", "cpu").tokenizer
    data = CaptionedShapes(scenes, render_pool(scenes, 64), tokenizer, seed=0)
    first, again = data[(0, 3)], data[(0, 3)]
    assert torch.equal(first["tokens"], again["tokens"]) and first["group"] == again["group"]
    assert first["image"].shape == (3, 64, 64)
    assert data.caption(0, 3) != data.caption(1, 3) or data.caption(0, 3) != data.caption(2, 3)


def test_a_broken_preprocessing_fails_the_accuracy_check(tmp_path):
    """The accuracy test has teeth: swapping the colour channels (a classic loader bug) sinks it."""
    broken = open_demo_engine("cpu")
    original = broken.loaded.preprocess

    def bgr(image):
        return original(image)[[2, 1, 0]]

    broken.loaded.preprocess = bgr
    result = evaluate(broken, seed=TEST_SEED, per_pair=2, search_gallery=1, folder=tmp_path)
    assert result.seen < 0.6, result.as_dict()


def test_write_demo_replaces_the_files_whole(tmp_path, monkeypatch):
    """The demo files go through core/atomic: a failed write leaves the old files as they were and
    no temporary file behind; a finished one is readable by everyone (a shipped resource)."""
    from safetensors.torch import load_file

    from clipdesk.core import atomic
    from training.build_demo import DemoConfig, new_model, write_demo

    model, _ = new_model(0)
    write_demo(model, tmp_path, DemoConfig(), {"seen": 0.5}, 1.0, 1.0)
    old = {name: (tmp_path / name).read_bytes() for name in ("model.safetensors", "metadata.json")}
    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == 0o644
    stored = load_file(str(tmp_path / "model.safetensors"))
    assert all(torch.equal(stored[k], v.float() if v.is_floating_point() else v) for k, v in model.state_dict().items())

    def full_disk(handle):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)  # every atomic write fails at its flush
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(OSError):
        write_demo(model, tmp_path, DemoConfig(), {"seen": 0.9}, 1.0, 1.0)
    assert {p.name for p in tmp_path.iterdir()} == set(old)
    assert all((tmp_path / name).read_bytes() == data for name, data in old.items())
