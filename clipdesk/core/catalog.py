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
    from .download import cached_weights_at

    registry = open_clip_registry()
    entries = [_demo_entry()] if _demo_entry() else []
    entries += finetuned_models()
    for arch, tag, hub, url in registry["pretrained"]:
        entries.append(ModelEntry(arch, tag, "pretrained", cached_weights_at(hub, url) is not None))
    if include_untagged:
        tagged = {arch for arch, *_ in registry["pretrained"]}
        entries += [ModelEntry(a, "none", "random", True) for a in registry["architectures"] if a not in tagged]
    return entries


REGISTRY_MEMO = "open_clip_registry.json"


def open_clip_registry() -> dict:
    """open_clip's (arch, tag, hf_hub, url) list and architectures, memoised per open_clip version.

    Importing open_clip imports torch, whose native start-up holds the GIL for about a second: the
    window's Model menu would freeze the app at every start just to list names. The memo in the
    cache folder lets later starts (the torch-free ONNX path included) list them without torch."""
    import json
    from importlib import metadata

    from .paths import cache_dir, resources_dir

    try:
        version = metadata.version("open_clip_torch")
    except metadata.PackageNotFoundError:
        version = "?"
    configs = sorted(p.name for p in (resources_dir() / "model_configs").glob("*.json"))
    stamp = {"open_clip": version, "configs": configs, "format": 1}
    path = cache_dir() / REGISTRY_MEMO
    from .safeio import read_json_or_none

    memo = read_json_or_none(path)  # a FIFO or /dev/zero in its place is "no memo", not a hang
    if isinstance(memo, dict) and memo.get("stamp") == stamp:
        return memo
    memo = {"stamp": stamp, **_build_registry()}
    shipped = {name.removesuffix(".json") for name in configs}
    if not shipped <= set(memo["architectures"]):
        return memo  # incomplete (should not happen): never memoise it
    try:
        from .atomic import atomic_write_text

        atomic_write_text(path, json.dumps(memo))
    except OSError:
        pass  # a read-only cache: built again next time
    return memo


def _build_registry() -> dict:
    from .errors import ModelLoadError
    from .models import list_architectures, preload_native, require_torch
    from .paths import resources_dir

    preload_native("torch")  # off the GIL: this runs on a pool thread while the window is up
    try:
        require_torch()
    except ModelLoadError:  # the torch-free app: only the shipped architectures, no tags to offer
        shipped = sorted(p.stem for p in (resources_dir() / "model_configs").glob("*.json"))
        return {"pretrained": [], "architectures": shipped}
    import open_clip

    pretrained = []
    for arch, tag in open_clip.list_pretrained():
        cfg = open_clip.get_pretrained_cfg(arch, tag) or {}
        pretrained.append([arch, tag, cfg.get("hf_hub", "") or "", cfg.get("url", "") or ""])
    return {"pretrained": pretrained, "architectures": list_architectures()}


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
