"""The one object the GUI, the CLI and training talk to: a loaded model + its caches.

It embeds files (cached by content), encodes labels (cached per label), and scores or searches
from embeddings, so editing labels never re-encodes an image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backends import Encoder
from .cache import EmbeddingCache
from .classify import Scores, rank, softmax_scores
from .embed import EmbedResult, embed_job, output_dim, share_cores
from .errors import LabelError
from .jobs import CancelToken, Job
from .prompts import DEFAULT_TEMPLATES, Label, clean_labels, template_set

log = logging.getLogger(__name__)


@dataclass
class LabelSet:
    """Cleaned labels, their class vectors, and notes on what was dropped or cut."""

    labels: list[Label]
    weights: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]


class Engine:
    def __init__(self, encoder: Encoder, cache: EmbeddingCache) -> None:
        self.encoder = encoder
        self.cache = cache
        self._text_memo: dict[str, np.ndarray] = {}
        self.text_encodes = 0  # labels that went through the text encoder (tests count it)
        head = getattr(getattr(encoder, "loaded", None), "head", None)
        if head is not None and hasattr(head, "check_dim"):  # a head for another model: refuse now
            head.check_dim(output_dim(encoder), getattr(encoder.loaded, "pretrained", ""))

    @property
    def loaded(self):
        return self.encoder.loaded

    # -- images -------------------------------------------------------------------------------
    def embed_job(self, paths: Sequence[Path], batch_size: int = 32, exact: bool = False,
                  cancel: CancelToken | None = None) -> Job[EmbedResult]:
        return embed_job(self.encoder, paths, self.cache, batch_size, exact, cancel)

    def quarters_job(self, paths: Sequence[Path], fallback: np.ndarray, batch_size: int = 32,
                     cancel: CancelToken | None = None, exact: bool = False) -> Job[np.ndarray]:
        """(N, 4, D) quarter-crop embeddings for multi-label scoring, aligned with `paths`.

        `fallback` holds the whole-image vectors (N, D): a file whose crops cannot be made (it
        changed or vanished since) gets its whole vector four times, i.e. whole-image scoring.
        """
        fallback = np.asarray(fallback, np.float32)
        quarters = np.repeat(fallback[:, None, :], 4, axis=1) if len(fallback) else np.zeros((0, 4, 0), np.float32)
        if not len(paths):
            return quarters
        result = yield from embed_job(self.encoder, paths, self.cache, max(1, batch_size // 4), exact,
                                      cancel=cancel, views="quarters")
        rows = {Path(path): row for row, path in enumerate(paths)}
        for path, vectors in zip(result.paths, result.features):
            quarters[rows[Path(path)]] = vectors
        return quarters

    def embed_image(self, path: Path) -> np.ndarray:
        from .jobs import run_job

        result = run_job(self.embed_job([Path(path)], batch_size=1))
        if result.errors:
            from .errors import ImageLoadError

            raise ImageLoadError(next(iter(result.errors.values())))
        return result.features[0]

    # -- labels -------------------------------------------------------------------------------
    def label_set(self, raw_labels: Sequence[str | Label], templates: str = DEFAULT_TEMPLATES) -> LabelSet:
        template_set(templates)  # validate early, one clear sentence
        labels, notes = clean_labels(list(raw_labels))
        if not labels:
            raise LabelError("No labels given: type at least one candidate label.")
        notes += self._length_notes(labels) + self._head_notes(labels)
        return LabelSet(labels, self.label_weights(labels, templates), notes)

    def label_weights(self, labels: Sequence[Label], templates: str) -> np.ndarray:
        identity = self.encoder.cache_identity
        keys = [label.key(templates) for label in labels]
        missing = [k for k in keys if k not in self._text_memo]
        if missing:
            self._text_memo.update(self.cache.get_texts(identity, missing))
        todo = [(label, key) for label, key in zip(labels, keys) if key not in self._text_memo]
        if todo:
            vectors = self._encode_labels([label for label, _ in todo], templates)
            fresh = {key: vector for (_, key), vector in zip(todo, vectors)}
            self.cache.put_texts(identity, fresh)
            self._text_memo.update(fresh)
        return np.stack([self._text_memo[k] for k in keys]).astype(np.float32)

    def _encode_labels(self, labels: Sequence[Label], templates: str) -> list[np.ndarray]:
        """open_clip's zero-shot classifier: per label, the mean of its normalised prompt
        embeddings (all templates × name and synonyms), renormalised.

        All new labels go through the text tower together (one pass per template group, not one
        per label): on a CPU each forward pass has a fixed cost that dominates short prompts.
        """
        share_cores(self.encoder)
        groups: dict[tuple, list[tuple[int, str]]] = {}
        for index, label in enumerate(labels):
            if "{}" in label.name:  # its own template: each filled prompt stands as is
                names, prompt_templates = label.prompts(templates), ("{}",)
            else:
                names, prompt_templates = [label.name, *label.synonyms], tuple(template_set(templates))
            groups.setdefault(prompt_templates, []).extend((index, name) for name in names)
        sums: list[np.ndarray | None] = [None] * len(labels)
        for prompt_templates, owned in groups.items():
            columns = self._zero_shot_columns([name for _, name in owned], list(prompt_templates))
            for (index, _), column in zip(owned, columns.T):
                sums[index] = column if sums[index] is None else sums[index] + column
        self.text_encodes += len(labels)
        return [(vector / np.linalg.norm(vector)).astype(np.float32) for vector in sums]

    def _zero_shot_columns(self, names: list[str], prompt_templates: list) -> np.ndarray:
        """(dim, len(names)) class vectors, each the renormalised mean over the templates."""
        zero_shot = getattr(self.encoder, "zero_shot_columns", None)
        if zero_shot is not None:  # torch-free backends (ONNX Runtime) build it in numpy
            return np.asarray(zero_shot(names, prompt_templates), np.float32)
        import torch
        from open_clip import build_zero_shot_classifier

        per_batch = max(1, 256 // len(prompt_templates))  # bounded memory for imagenet80 × many labels
        with torch.inference_mode():
            columns = build_zero_shot_classifier(
                self.encoder, self.loaded.tokenizer, names, prompt_templates,
                num_classes_per_batch=per_batch, device="cpu",
            )
        return columns.float().cpu().numpy()

    def _head_notes(self, labels: list[Label]) -> list[str]:
        """Say when a fine-tuned few-shot head is not used, instead of silently going zero-shot."""
        head = getattr(self.loaded, "head", None)
        if head is None or head.match([label.name for label in labels]) is not None:
            return []
        known = {" ".join(c.replace("_", " ").casefold().split()) for c in head.class_names}
        other = [lb.name for lb in labels if " ".join(lb.name.replace("_", " ").casefold().split()) not in known]
        what = f"'{other[0][:40]}' is not one of its classes" if other else "a label is given twice"
        return [f"The model's few-shot head is not used ({what}); these scores are zero-shot."]

    def _length_notes(self, labels: list[Label]) -> list[str]:
        encode = getattr(self.loaded.tokenizer, "encode", None)
        if encode is None:
            return []
        limit = self.loaded.context_length - 2  # start and end tokens
        return [
            f"Label '{label.name[:40]}…' is longer than the model's {limit} tokens; its end was cut."
            for label in labels if len(encode(label.name)) > limit
        ]

    # -- scoring ------------------------------------------------------------------------------
    def score(self, features: np.ndarray, label_set: LabelSet, multi_label: bool = False,
              templates: str = DEFAULT_TEMPLATES, quarters: np.ndarray | None = None) -> Scores:
        """Softmax over the labels (or a fine-tuned head); with `multi_label`, each label against
        the image's best one, from the whole image and, when given, its quarters (N, 4, D)."""
        scale = self.encoder.logit_scale
        if multi_label:
            from .multilabel import global_local_scores

            return global_local_scores(features, quarters, label_set.weights, scale, label_set.names)
        head = self.loaded.head
        if head is not None and len(features) and head.match(label_set.names) is not None:
            return head.scores(features, label_set)  # also for other case/spacing or a subset
        return softmax_scores(features, label_set.weights, scale, label_set.names)

    def search_text(self, query: str, features: np.ndarray, top_k: int | None = None,
                    templates: str = "none") -> list[tuple[int, float]]:
        if not query.strip():
            raise LabelError("The search query is empty.")
        vector = self.label_weights([Label(query.strip())], templates)[0]
        return rank(vector, features, top_k)

    def search_image(self, query: np.ndarray, features: np.ndarray, top_k: int | None = None) -> list[tuple[int, float]]:
        return rank(query, features, top_k)


def open_engine_job(arch: str, pretrained: str, device: str = "auto", backend: str = "torch",
                    precision: str = "fp32", use_cache: bool = True,
                    cancel: CancelToken | None = None) -> Job[Engine]:
    """Load the model (downloading if needed), pick the backend, attach the cache."""
    from .backends import make_encoder
    from .cache import NullCache
    from .models import load_model_job

    if backend not in ("torch", None, ""):  # a cached ONNX export starts without torch
        from .onnx_start import open_exported_job

        encoder = yield from open_exported_job(arch, pretrained, device, backend, precision, cancel)
        if encoder is not None:
            return Engine(encoder, EmbeddingCache() if use_cache else NullCache())
    loaded = yield from load_model_job(arch, pretrained, device, cancel)
    encoder = make_encoder(loaded, backend, precision=precision)
    if hasattr(encoder, "prepare_job"):  # e.g. the ONNX export on first use, with progress
        encoder = yield from encoder.prepare_job(cancel)
    return Engine(encoder, EmbeddingCache() if use_cache else NullCache())
