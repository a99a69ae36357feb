"""What models can be chosen: open_clip's pretrained registry, the demo model, fine-tuned folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .paths import finetuned_models_dir


@dataclass
class ModelEntry:
    arch: str
    pretrained: str  # tag, folder path, 'demo' or 'none'
    kind: str  # "pretrained", "demo", "fine-tuned", "random"
    available: bool  # usable without a download
    class_names: tuple[str, ...] = ()


def list_models(include_untagged: bool = False) -> list[ModelEntry]:
    import open_clip

    from .download import cached_weights
    from .models import list_architectures

    entries = [_demo_entry()] if _demo_entry() else []
    entries += finetuned_models()
    for arch, tag in open_clip.list_pretrained():
        entries.append(ModelEntry(arch, tag, "pretrained", cached_weights(arch, tag) is not None))
    if include_untagged:
        tagged = {arch for arch, _ in open_clip.list_pretrained()}
        entries += [ModelEntry(a, "none", "random", True) for a in list_architectures() if a not in tagged]
    return entries


def _demo_entry() -> ModelEntry | None:
    from .demo import demo_model_dir
    from .errors import ModelLoadError
    from .models import read_metadata

    try:
        meta = read_metadata(demo_model_dir())
    except ModelLoadError:
        return None
    return ModelEntry(meta.get("architecture", "demo"), "demo", "demo", True,
                      tuple(meta.get("class_names", ())))


def finetuned_models(folder: Path | None = None) -> list[ModelEntry]:
    """Folders the training module saved (metadata.json inside), newest first."""
    from .errors import ModelLoadError
    from .models import read_metadata

    folder = folder or finetuned_models_dir()
    entries = []
    for meta_path in sorted(folder.glob("*/metadata.json"), key=_newest_first):
        try:
            meta = read_metadata(meta_path.parent)
        except ModelLoadError:
            continue  # a half-written, malformed or foreign folder is not offered
        entries.append(ModelEntry(meta.get("architecture", "?"), str(meta_path.parent), "fine-tuned",
                                  True, tuple(meta.get("class_names", ()))))
    return entries


def _newest_first(path: Path) -> float:
    try:
        return -path.stat().st_mtime
    except OSError:
        return 0.0
