"""Labels → class vectors: template sets against open_clip's own zero-shot classifier, synonyms,
`{}` labels, and the edge cases (empty, duplicate, overlong, non-Latin)."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch

from clipdesk.core.errors import LabelError
from clipdesk.core.prompts import (
    TEMPLATE_SETS,
    Label,
    clean_labels,
    parse_label,
    read_labels_file,
    split_labels,
)


def text_vectors(loaded, texts: list[str]) -> np.ndarray:
    """Independent: the raw model, normalised per prompt."""
    with torch.no_grad():
        features = loaded.model.encode_text(loaded.tokenizer(texts))
        return (features / features.norm(dim=-1, keepdim=True)).numpy()


def class_vector(loaded, texts: list[str]) -> np.ndarray:
    mean = text_vectors(loaded, texts).mean(axis=0)
    return mean / np.linalg.norm(mean)


@pytest.mark.parametrize("templates", ["none", "photo", "ensemble", "imagenet80"])
def test_template_sets_equal_open_clip_zero_shot_classifier(tiny_engine_nocache, templates):
    labels = ["cat", "dog", "sports car"]
    weights = tiny_engine_nocache.label_set(labels, templates).weights
    loaded = tiny_engine_nocache.loaded
    expected = open_clip.build_zero_shot_classifier(
        loaded.model, loaded.tokenizer, labels, TEMPLATE_SETS[templates], num_classes_per_batch=2)
    np.testing.assert_allclose(weights, expected.T.numpy(), atol=1e-5)
    assert weights.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(weights, axis=1), 1.0, atol=1e-5)


def test_template_sets_are_open_clips_lists():
    assert TEMPLATE_SETS["ensemble"] == open_clip.SIMPLE_IMAGENET_TEMPLATES
    assert TEMPLATE_SETS["imagenet80"] == open_clip.OPENAI_IMAGENET_TEMPLATES
    assert len(TEMPLATE_SETS["imagenet80"]) == 80
    assert TEMPLATE_SETS["photo"] == ("a photo of a {}.",)


def test_ensemble_is_mean_of_its_prompts(tiny_engine_nocache):
    loaded = tiny_engine_nocache.loaded
    prompts = [t("koala") for t in open_clip.SIMPLE_IMAGENET_TEMPLATES]
    got = tiny_engine_nocache.label_set(["koala"], "ensemble").weights[0]
    np.testing.assert_allclose(got, class_vector(loaded, prompts), atol=1e-5)


def test_template_none_uses_label_as_typed(tiny_engine_nocache):
    got = tiny_engine_nocache.label_set(["A Koala, up a tree"], "none").weights[0]
    # The comma-free label goes through untouched (label_set does not split strings).
    np.testing.assert_allclose(got, class_vector(tiny_engine_nocache.loaded, ["A Koala, up a tree"]),
                               atol=1e-5)


def test_unknown_template_set(tiny_engine_nocache):
    with pytest.raises(LabelError, match="Unknown template set 'fancy'.*photo"):
        tiny_engine_nocache.label_set(["cat"], "fancy")


def test_synonyms_are_averaged(tiny_engine_nocache):
    label_set = tiny_engine_nocache.label_set(["car | automobile | auto", "dog"], "photo")
    assert label_set.names == ["car", "dog"]
    expected = class_vector(tiny_engine_nocache.loaded,
                            ["a photo of a car.", "a photo of a automobile.", "a photo of a auto."])
    np.testing.assert_allclose(label_set.weights[0], expected, atol=1e-5)


def test_label_with_braces_is_its_own_template(tiny_engine_nocache):
    loaded = tiny_engine_nocache.loaded
    label_set = tiny_engine_nocache.label_set(
        ["a {} in the snow | dog | wolf", "a sketch of {}", "cat"], "ensemble")
    assert label_set.names == ["a {} in the snow", "a sketch of {}", "cat"]
    np.testing.assert_allclose(label_set.weights[0],
                               class_vector(loaded, ["a dog in the snow", "a wolf in the snow"]),
                               atol=1e-5)
    np.testing.assert_allclose(label_set.weights[1], class_vector(loaded, ["a sketch of"]), atol=1e-5)
    # The others still get the chosen template set.
    ensemble = [t("cat") for t in open_clip.SIMPLE_IMAGENET_TEMPLATES]
    np.testing.assert_allclose(label_set.weights[2], class_vector(loaded, ensemble), atol=1e-5)


def test_empty_labels_rejected_with_one_sentence(tiny_engine_nocache):
    for raw in ([], [""], ["  ", "\t"], ["|", " | "]):
        with pytest.raises(LabelError, match="No labels") as info:
            tiny_engine_nocache.label_set(raw)
        assert "\n" not in str(info.value)


def test_empty_entries_dropped_duplicates_noted(tiny_engine_nocache):
    label_set = tiny_engine_nocache.label_set(["cat", "", "Cat", "dog", " cat ", "dog"])
    assert label_set.names == ["cat", "dog"]
    assert len(label_set.weights) == 2
    assert sum("Duplicate" in note for note in label_set.notes) == 3


def test_overlong_label_is_cut_with_a_note(tiny_engine_nocache):
    long_label = " ".join(["very"] * 120) + " long cat"
    label_set = tiny_engine_nocache.label_set([long_label, "dog"])
    assert len(label_set.notes) == 1 and "longer than" in label_set.notes[0]
    assert label_set.names == [long_label, "dog"]
    assert np.isfinite(label_set.weights).all()
    # Truncated at the context length, exactly as open_clip's tokenizer does it.
    expected = class_vector(tiny_engine_nocache.loaded, [f"a photo of a {long_label}."])
    np.testing.assert_allclose(label_set.weights[0], expected, atol=1e-5)


def test_non_latin_labels(tiny_engine_nocache):
    labels = ["猫", "кошка", "قطة", "🐱", "cat"]
    label_set = tiny_engine_nocache.label_set(labels)
    assert label_set.names == labels and label_set.notes == []
    expected = np.stack([class_vector(tiny_engine_nocache.loaded, [f"a photo of a {label}."])
                         for label in labels])
    np.testing.assert_allclose(label_set.weights, expected, atol=1e-5)
    # Each is tokenised to real tokens, not one shared "unknown" vector.
    similarity = label_set.weights @ label_set.weights.T
    assert (similarity[~np.eye(len(labels), dtype=bool)] < 0.9999).all()


def test_split_and_parse_helpers():
    assert split_labels("cat, dog\nsports car,,\r\n  ") == ["cat", "dog", "sports car"]
    assert parse_label(" car | automobile |  ") == Label("car", ("automobile",))
    with pytest.raises(LabelError):
        parse_label(" | ")
    labels, notes = clean_labels(["a  b", "A B", Label("x")])
    assert labels == [Label("a b"), Label("x")] and len(notes) == 1


def test_read_labels_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("\ufeff# my labels\ncat\n\ndog | puppy\r\n猫\n", encoding="utf-8")
    assert read_labels_file(path) == ["cat", "dog | puppy", "猫"]
    with pytest.raises(LabelError, match="Could not read labels"):
        read_labels_file(tmp_path / "missing.txt")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\xfa\x00\x81")
    with pytest.raises(LabelError):
        read_labels_file(binary)
