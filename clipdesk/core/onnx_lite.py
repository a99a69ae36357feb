"""Torch-free stand-ins for open_clip's tokenizer and eval transform, for the ONNX Runtime path.

Importing torch costs about a second and ~500 MB of resident memory before any work is done; a
run whose encoders are ONNX files needs neither. These classes reproduce open_clip's
`SimpleTokenizer` and its 'shortest'/'squash' eval transforms exactly (same tokens, same float32
pixels), and the export checks that on sample inputs before it records them as usable — a model
whose tokenizer or transform differs simply keeps using open_clip's (and torch).

Pillow, regex and ftfy are imported where they are used, on purpose: the tokenizer needs no
Pillow and the transform neither regex nor ftfy, so a start pays only for what it runs.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import string
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .paths import resources_dir

if TYPE_CHECKING:
    from .models import LoadedModel

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
_CLEANERS = ("lower", "whitespace", "canonicalize")


def open_clip_bpe_path() -> Path:
    """open_clip's BPE vocabulary: the copy shipped in resources/tokenizer (a torch-free install
    has no open_clip; a test checks the copy is open_clip's file), else open_clip's own, found
    without importing open_clip (whose import pulls torch)."""
    shipped = resources_dir() / "tokenizer" / BPE_FILE
    if shipped.is_file():
        return shipped
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip is not installed; its BPE vocabulary is needed.")
    return Path(next(iter(spec.submodule_search_locations))) / BPE_FILE


@lru_cache
def _bytes_to_unicode() -> dict[int, str]:
    """The reversible byte → printable-character map of OpenAI's CLIP BPE."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _pairs(word: tuple[str, ...]) -> set[tuple[str, str]]:
    return set(zip(word, word[1:]))


class ClipBpeTokenizer:
    """open_clip's `SimpleTokenizer` (OpenAI CLIP BPE) returning numpy int64 instead of torch."""

    def __init__(self, context_length: int = 77, clean: str = "lower", bpe_path: str | Path | None = None) -> None:
        import regex

        if clean not in _CLEANERS:
            raise ValueError(f"Unknown tokenizer clean mode '{clean}'.")
        self.context_length = context_length
        self.clean = clean
        with gzip.open(bpe_path or open_clip_bpe_path()) as handle:
            merges = handle.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
        # Keyed by the file's own "first second" lines, not split into tuples: building the two
        # 49k-entry tables was 80 ms of every start (a search from the index folder takes ~0.7 s).
        vocab = list(_bytes_to_unicode().values())
        vocab = vocab + [v + "</w>" for v in vocab] + [merge.replace(" ", "") for merge in merges]
        specials = ["<start_of_text>", "<end_of_text>"]
        vocab.extend(specials)
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {t: t for t in specials}
        self.pat = regex.compile(
            "|".join(specials) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )
        self._regex = regex
        self.sot_token_id = self.encoder[specials[0]]
        self.eot_token_id = self.encoder[specials[1]]

    def _clean(self, text: str) -> str:
        import ftfy

        text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
        if self.clean == "canonicalize":
            text = text.replace("_", " ").translate(str.maketrans("", "", string.punctuation)).lower()
            return " ".join(text.split()).strip()
        text = " ".join(text.split()).strip()
        return text.lower() if self.clean == "lower" else text

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = (*token[:-1], token[-1] + "</w>")
        pairs = _pairs(word)
        if not pairs:
            return token + "</w>"
        ranks = self.bpe_ranks
        while True:
            bigram = min(pairs, key=lambda pair: ranks.get(f"{pair[0]} {pair[1]}", float("inf")))
            if f"{bigram[0]} {bigram[1]}" not in ranks:
                break
            word = _merge(word, bigram)
            if len(word) == 1:
                break
            pairs = _pairs(word)
        result = " ".join(word)
        self.cache[token] = result
        return result

    def encode(self, text: str) -> list[int]:
        byte_map = _bytes_to_unicode()
        tokens: list[int] = []
        for piece in self._regex.findall(self.pat, self._clean(text)):
            piece = "".join(byte_map[b] for b in piece.encode("utf-8"))
            tokens.extend(self.encoder[t] for t in self.bpe(piece).split(" "))
        return tokens

    def __call__(self, texts: str | list[str], context_length: int | None = None) -> np.ndarray:
        """Token ids, shape (len(texts), context_length), zero-padded; too long → cut, EOT kept."""
        if isinstance(texts, str):
            texts = [texts]
        length = context_length or self.context_length
        result = np.zeros((len(texts), length), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = [self.sot_token_id, *self.encode(text), self.eot_token_id]
            if len(tokens) > length:
                tokens = tokens[:length]
                tokens[-1] = self.eot_token_id
            result[row, : len(tokens)] = tokens
        return result


def _merge(word: tuple[str, ...], bigram: tuple[str, str]) -> tuple[str, ...]:
    first, second = bigram
    merged: list[str] = []
    i = 0
    while i < len(word):
        try:
            j = word.index(first, i)
        except ValueError:
            merged.extend(word[i:])
            break
        merged.extend(word[i:j])
        i = j
        if i < len(word) - 1 and word[i + 1] == second:
            merged.append(first + second)
            i += 2
        else:
            merged.append(word[i])
            i += 1
    return tuple(merged)


class NumpyPreprocess:
    """open_clip's eval transform (resize, centre crop, RGB, scale, normalise) in PIL + numpy.

    Returns a float32 (3, H, W) array; the arithmetic is torchvision's, in the same float32 order,
    so the pixels are bit-for-bit what `ToTensor` + `Normalize` give.
    """

    def __init__(self, size: int, mean, std, interpolation: str = "bicubic", resize_mode: str = "shortest") -> None:
        if resize_mode not in ("shortest", "squash"):
            raise ValueError(f"resize mode '{resize_mode}' has no torch-free transform")
        self.size = int(size)
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.interpolation = interpolation
        self.resize_mode = resize_mode

    def config(self) -> dict:
        return {"size": self.size, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "interpolation": self.interpolation, "resize_mode": self.resize_mode}

    def _resample(self):
        from PIL import Image

        return {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR,
                "nearest": Image.NEAREST, "lanczos": Image.LANCZOS}[self.interpolation]

    def __call__(self, image) -> np.ndarray:
        size = self.size
        width, height = image.size
        if self.resize_mode == "squash":
            target = (size, size)
        elif width <= height:  # torchvision's Resize(int): short side to `size`, long side floored
            target = (size, int(size * height / width))
        else:
            target = (int(size * width / height), size)
        if target != (width, height):
            image = image.resize(target, self._resample())
        width, height = image.size
        left, top = int(round((width - size) / 2.0)), int(round((height - size) / 2.0))
        if (width, height) != (size, size):
            image = image.crop((left, top, left + size, top + size))
        if image.mode != "RGB":  # after resizing, as open_clip does (it matters for P and RGBA)
            image = image.convert("RGB")
        pixels = np.asarray(image, dtype=np.float32) / np.float32(255)
        pixels = (pixels - self.mean) / self.std
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))


# -- does the stand-in reproduce this model's own? (checked once, at export) --------------------
def matching_preprocess_config(loaded: LoadedModel) -> dict | None:
    """The torch-free transform's settings, if it reproduces open_clip's on sample images."""
    from PIL import Image

    cfg = getattr(loaded.model.visual, "preprocess_cfg", None) or {}
    size = cfg.get("size", loaded.image_size)
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            return None
        size = size[0]
    try:
        lite = NumpyPreprocess(size, cfg["mean"], cfg["std"], cfg.get("interpolation", "bicubic"),
                               cfg.get("resize_mode", "shortest"))
    except (KeyError, ValueError):
        return None
    rng = np.random.default_rng(0)
    for width, height in ((97, 61), (61, 97), (size, size), (3 * size + 1, 2 * size)):
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        reference = np.asarray(loaded.preprocess(image))
        if reference.shape != (3, size, size) or np.abs(lite(image) - reference).max() > 1e-6:
            return None
    return lite.config()


_CLEAN_MODES = {"_clean_lower": "lower", "_clean_whitespace": "whitespace", "_clean_canonicalize": "canonicalize"}


def matching_tokenizer_config(loaded: LoadedModel) -> dict | None:
    """The torch-free tokenizer's settings, if the model uses open_clip's plain CLIP BPE."""
    tokenizer = loaded.tokenizer
    if type(tokenizer).__name__ != "SimpleTokenizer" or getattr(tokenizer, "reduction_fn", None):
        return None
    clean = _CLEAN_MODES.get(getattr(getattr(tokenizer, "clean_fn", None), "__name__", ""))
    if clean is None or len(tokenizer.encoder) != 49408:
        return None
    config = {"context_length": int(tokenizer.context_length or loaded.context_length), "clean": clean}
    lite = ClipBpeTokenizer(bpe_path=open_clip_bpe_path(), **config)
    samples = ["a photo of a cat.", "Ünïcødé café 東京 😀 &amp;  spaces", "it's 42 dogs' toys " * 12]
    if not np.array_equal(lite(samples), np.asarray(tokenizer(samples))):
        return None
    return config
