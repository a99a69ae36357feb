"""The public Python API (`import clipdesk`): same scores as the CLI, inputs of every kind, errors as
results, no re-encoding in pipeline-style loops, cancellation, progress, reports, runnable docstrings."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import clipdesk
from clipdesk.core import errors as core_errors
from clipdesk.core.demo import demo_sample_images

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["red circle", "blue star", "yellow triangle", "pink ring"]
TORCH = {"backend": "torch", "device": "cpu"}  # no ONNX export: fast and exact


@pytest.fixture(scope="module")
def clf():
    """Read-only in tests (nothing patched on it); cache=False so no test's folders are touched."""
    return clipdesk.load("demo", cache=False, **TORCH)


@pytest.fixture
def folder(tmp_path):
    """Three demo samples in a folder (one in a sub-folder) and a file that is not an image."""
    root = tmp_path / "shapes"
    (root / "sub").mkdir(parents=True)
    samples = demo_sample_images()
    for sample, target in zip(samples[:3], ["a.png", "b.png", "sub/c.png"]):
        (root / target).write_bytes(sample.read_bytes())
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def cli_json(*argv: str):
    out = subprocess.run([sys.executable, "-m", "clipdesk", *map(str, argv), "--format", "json"],
                         capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# -- the surface ----------------------------------------------------------------------------------
def test_import_is_light_and_lazy():
    code = ("import sys, clipdesk; heavy = [m for m in ('torch', 'numpy', 'PIL', 'pandas', 'open_clip') "
            "if m in sys.modules]; assert not heavy, heavy; clipdesk.load; assert 'numpy' in sys.modules; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_public_names_resolve_and_document_themselves():
    for name in clipdesk.__all__:
        assert getattr(clipdesk, name) is not None, name
    for function in (clipdesk.load, clipdesk.finetune, clipdesk.evaluate, clipdesk.demo_images,
                     clipdesk.Classifier.classify, clipdesk.Classifier.embed,
                     clipdesk.Classifier.embed_text, clipdesk.Classifier.search):
        assert ">>> " in (function.__doc__ or ""), f"{function.__qualname__} has no runnable example"
    assert clipdesk.ModelLoadError is core_errors.ModelLoadError
    assert clipdesk.ImageLoadError is core_errors.ImageLoadError
    assert clipdesk.LabelError is core_errors.LabelError
    for error in (clipdesk.ModelLoadError, clipdesk.ImageLoadError, clipdesk.LabelError, clipdesk.Cancelled):
        assert issubclass(error, clipdesk.ClipdeskError) and error.__doc__
    with pytest.raises(AttributeError):
        clipdesk.no_such_name  # noqa: B018


# -- classify -------------------------------------------------------------------------------------
@pytest.mark.parametrize("multi_label", [False, True])
def test_scores_equal_the_cli(clf, folder, multi_label):
    extra = ["--multi-label"] if multi_label else []
    rows = cli_json("classify", folder, folder / "missing.png", "--model", "demo", "--labels",
                    ",".join(LABELS), "--backend", "torch", "--device", "cpu", *extra)
    results = clf.classify([folder, folder / "missing.png"], LABELS, multi_label=multi_label)  # both: model's prompts
    by_path = {row["path"]: row for row in rows}
    assert sorted(by_path) == sorted(r.path for r in results)  # same files, errors included
    for result in results:
        expected = by_path[result.path]
        if "error" in expected:
            assert result.error == expected["error"] and result.label is None
            continue
        assert result.error is None and result.label == expected["label"]
        assert result.scores.keys() == expected["scores"].keys()
        for name, value in expected["scores"].items():
            assert result.scores[name] == pytest.approx(value, abs=2e-6)
            assert result.cosines[name] == pytest.approx(expected["cosines"][name], abs=2e-6)
        assert result.as_dict().keys() == expected.keys()
    assert sum(r.error is not None for r in results) == 2  # broken.png and missing.png


def test_in_memory_images_score_like_their_files(clf, folder):
    path = folder / "b.png"
    picture = Image.open(path)
    array = np.asarray(picture.convert("RGB"))
    results = clf.classify([path, picture, array, folder / "sub"], LABELS)
    assert [(r.path, r.index) for r in results] == [
        (str(path.absolute()), None), (None, 1), (None, 2), (str((folder / "sub" / "c.png").absolute()), None)]
    for in_memory in results[1:3]:
        assert in_memory.label == results[0].label
        for name in LABELS:
            assert in_memory.cosines[name] == pytest.approx(results[0].cosines[name], abs=1e-5)
    single = clf.classify(picture, ", ".join(LABELS))  # one image, labels as one string
    assert len(single) == 1 and single[0].index == 0 and single[0].label == results[0].label
    batch = clf.classify(np.stack([array, array[::-1]]), LABELS)  # N×H×W×3: N images
    assert [r.index for r in batch] == [0, 1] and batch[0].label == results[2].label
    assert [batch[0].cosines[n] for n in LABELS] == pytest.approx([results[2].cosines[n] for n in LABELS], abs=1e-5)


def test_bad_items_are_results_with_errors_not_exceptions(clf, folder):
    good = folder / "a.png"
    items = [good, folder / "broken.png", "nowhere.jpg", np.zeros((8, 8, 3), np.float64), object(),
             np.zeros((64, 64, 3), np.uint8)]
    results = clf.classify(items, LABELS)
    assert len(results) == 6
    assert [r.error is None for r in results] == [True, False, False, False, False, True]
    assert "broken.png" in results[1].error and "nowhere.jpg" in results[2].error
    assert results[3].index == 3 and "uint8" in results[3].error
    assert results[4].index == 4 and "object" in results[4].error
    assert all(r.label is None and r.score is None for r in results[1:5])


def test_top_k_and_order(clf, folder):
    results = clf.classify(folder / "a.png", LABELS, top_k=2)
    values = list(results[0].scores.values())
    assert len(values) == 2 and values == sorted(values, reverse=True)
    assert results[0].label == next(iter(results[0].scores)) and results[0].score == values[0]
    full = clf.classify(folder / "a.png", LABELS)[0]
    assert sum(full.scores.values()) == pytest.approx(1.0, abs=1e-5)


def test_label_and_model_errors_are_the_projects_types(clf, folder):
    with pytest.raises(clipdesk.LabelError):
        clf.classify(folder, [])
    with pytest.raises(clipdesk.LabelError):
        clf.classify(folder, LABELS, templates="no-such-set")
    with pytest.raises(clipdesk.ModelLoadError):
        clipdesk.load("no-such-architecture", pretrained="none", **TORCH)
    with pytest.raises(clipdesk.ImageLoadError):
        clf.search(Path(folder / "broken.png"), folder)


def test_pipeline_calls_reuse_the_model_and_label_vectors(folder):
    own = clipdesk.load("demo", **TORCH)  # this test's own instance: its encoder gets wrapped
    encoder = own.engine.encoder
    calls = {"text": 0}
    original = encoder.encode_text

    def counting(tokens, normalize=True):
        calls["text"] += 1
        return original(tokens, normalize=normalize)

    encoder.encode_text = counting
    picture = Image.open(folder / "a.png")
    first = own.classify(picture, LABELS)
    text_calls, images_before = calls["text"], encoder.encoder_calls
    assert text_calls >= 1
    for _ in range(5):
        again = own(picture, LABELS)  # `clf(image, labels)`, pipeline style
        assert again[0].scores == first[0].scores
    assert calls["text"] == text_calls  # labels were not re-encoded
    assert encoder.encoder_calls == images_before + 5  # one image encoding per call, nothing else
    assert own.engine.encoder is encoder and own.engine.loaded.model is encoder.loaded.model


# -- embed and search -------------------------------------------------------------------------------
def test_embeddings_are_normalised_and_agree_with_scores(clf, folder):
    with pytest.warns(UserWarning, match="broken.png"):
        vectors = clf.embed([folder / "a.png", folder / "broken.png", folder / "b.png"])
    assert vectors.shape == (3, 128) and vectors.dtype == np.float32
    assert np.isnan(vectors[1]).all()
    assert np.linalg.norm(vectors[[0, 2]], axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    text = clf.embed_text(LABELS, templates="photo")
    assert np.linalg.norm(text, axis=1) == pytest.approx(np.ones(len(LABELS)), abs=1e-5)
    result = clf.classify(folder / "a.png", LABELS, templates="photo")[0]
    assert vectors[0] @ text.T == pytest.approx([result.cosines[name] for name in LABELS], abs=1e-5)
    with pytest.raises(clipdesk.LabelError):
        clf.embed_text([" "])


def test_search_by_text_and_by_image(clf, folder):
    samples = demo_sample_images()
    hits = clf.search("blue star", samples, top_k=3)
    assert len(hits) == 3 and [h.rank for h in hits] == [1, 2, 3]
    assert Path(hits[0].path).name == "02-blue-star.png"
    assert hits[0].score >= hits[1].score >= hits[2].score
    by_path = clf.search(samples[5], samples, top_k=1)  # a str naming an image file: an image query
    by_picture = clf.search(Image.open(samples[5]), [*samples, folder / "broken.png"], top_k=1)
    assert by_path[0].path == str(samples[5]) and by_path[0].score == pytest.approx(1.0, abs=1e-5)
    assert by_picture[0].path == str(samples[5])
    assert by_picture[-1].rank is None and "broken.png" in by_picture[-1].error


def test_to_pandas_and_without_pandas(clf, folder, monkeypatch):
    results = clf.classify(folder, LABELS)
    frame = results.to_pandas()
    assert list(frame.columns[:5]) == ["path", "index", "label", "score", "error"]
    assert list(frame.columns[5:]) == LABELS and len(frame) == 4
    ok = frame[frame["error"].isna()]
    assert ok[LABELS].sum(axis=1).to_numpy() == pytest.approx(np.ones(3), abs=1e-5)
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with pytest.raises(ImportError, match="pip install pandas"):
        results.to_pandas()
    assert len(results) == 4  # the results themselves need nothing


# -- progress and cancellation ----------------------------------------------------------------------
def test_progress_callback_and_cancel_token(clf):
    samples = demo_sample_images()
    own = clipdesk.Classifier(clf.engine, batch_size=4)  # same engine, smaller batches
    seen = []
    own.classify(samples, LABELS, progress=lambda done, total, message: seen.append((done, total)))
    assert seen[-1] == (12, 12) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    token = clipdesk.CancelToken()
    steps = []

    def cancel_after_first_batch(done, total, message):
        steps.append(done)
        if done >= 4:
            token.cancel()

    with pytest.raises(clipdesk.Cancelled):
        own.embed(samples, progress=cancel_after_first_batch, cancel=token)
    assert max(steps) == 4  # stopped within one batch


def test_keyboard_interrupt_stops_cleanly(clf, folder):
    own = clipdesk.Classifier(clf.engine, batch_size=1)

    def interrupt(done, total, message):
        if done >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        own.classify(demo_sample_images(), LABELS, progress=interrupt)
    assert not [t for t in threading.enumerate() if t.name.startswith("decode")]  # pool shut down
    assert own.classify(folder / "a.png", LABELS)[0].error is None  # and the model still works
    assert clf.classify(folder / "a.png", LABELS, progress=True)[0].label == "red circle"


# -- training reports --------------------------------------------------------------------------------
def test_finetune_and_evaluate_return_the_cli_reports(tmp_path):
    from training.api import EvalReport, FinetuneResult

    data = tmp_path / "shapes"  # stars and squares: three demo samples each
    for sample in demo_sample_images():
        shape = sample.stem.split("-")[-1]
        if shape in ("star", "square"):
            (data / shape).mkdir(parents=True, exist_ok=True)
            (data / shape / sample.name).write_bytes(sample.read_bytes())
    result = clipdesk.finetune(data, model="demo", out=tmp_path / "model", device="cpu", epochs=20)
    assert isinstance(result, FinetuneResult) and sorted(result.classes) == ["square", "star"]
    report = clipdesk.evaluate(data, result, device="cpu")
    assert isinstance(report, EvalReport) and len(report.true) == 6
    printed = cli_json("evaluate", data, "--model", "clipdesk-demo", "--pretrained", result.model_dir,
                       "--device", "cpu")
    assert printed["classes"] == report.classes and printed["confusion"] == report.confusion
    assert printed["accuracy"] == pytest.approx(report.accuracy)
    tuned = clipdesk.load(result.model_dir, **TORCH)
    assert sorted(tuned.class_names) == sorted(result.classes)


# -- the docstrings' examples run as written -------------------------------------------------------------
def test_docstring_examples_run():
    import clipdesk.api

    for module in (clipdesk, clipdesk.api):
        outcome = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert outcome.attempted > 0 and outcome.failed == 0, module.__name__


def test_missing_labels_or_query_are_one_sentence_label_errors():
    import clipdesk

    clf = clipdesk.load("demo", cache=False)
    image = clipdesk.demo_images()[0]
    for labels in (None, 3, ["cat", None]):
        with pytest.raises(clipdesk.LabelError, match="labels must be"):
            clf.classify(image, labels)
    for query in (None, "", "   "):
        with pytest.raises(clipdesk.LabelError, match="search needs a query"):
            clf.search(query, image)


def test_multi_label_threshold_decides_which_labels_are_present(clf):
    images = clipdesk.demo_images()[:3]
    strict = clf.classify(images, LABELS, multi_label=True, threshold=1.0)
    loose = clf.classify(images, LABELS, multi_label=True, threshold=1e-12)
    for one, many in zip(strict, loose):
        assert one.labels == [one.label]  # only the best label scores 1
        assert many.labels == [name for name, p in sorted(many.scores.items(), key=lambda kv: -kv[1])
                               if p >= 1e-12]
        assert len(many.labels) > 1
    assert clf.classify(images, LABELS)[0].labels is None  # single-label: no list


def test_in_memory_images_get_the_same_multi_label_scores_as_their_files(clf, folder):
    paths = [folder / "a.png", folder / "b.png"]
    pictures = [Image.open(path).convert("RGB") for path in paths]
    from_files = clf.classify(paths, LABELS, multi_label=True)
    in_memory = clf.classify([pictures[0], paths[1], pictures[1]], LABELS, multi_label=True)  # mixed inputs
    for got, want in zip(in_memory, [from_files[0], from_files[1], from_files[1]]):
        assert got.labels == want.labels
        for name in LABELS:  # relative: the other labels' scores are ~1e-6, quarters change them ~10×
            assert got.scores[name] == pytest.approx(want.scores[name], rel=1e-3, abs=1e-12)
