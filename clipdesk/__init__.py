"""clipdesk: zero-shot image classification and search with CLIP.

The Python API (everything in `__all__`); importing it is cheap, torch loads on first use:

    >>> import clipdesk
    >>> clf = clipdesk.load("demo")                       # the built-in model, offline
    >>> results = clf.classify(clipdesk.demo_images()[:2], ["red circle", "blue star"])
    >>> [r.label for r in results]
    ['red circle', 'blue star']

Errors are clipdesk's own exception types, each with one sentence for the user:
`ClipdeskError` (the base of all), `ModelLoadError`, `ImageLoadError`, `LabelError`, `Cancelled`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .core.errors import Cancelled, ClipdeskError, ImageLoadError, LabelError, ModelLoadError
from .core.jobs import CancelToken
from .core.version import __version__

if TYPE_CHECKING:
    from .api import (
        Classifier,
        ImageInput,
        Prediction,
        ProgressArg,
        Results,
        SearchHit,
        demo_images,
        evaluate,
        finetune,
        load,
    )

__all__ = [
    "CancelToken", "Cancelled", "Classifier", "ClipdeskError", "ImageInput", "ImageLoadError",
    "LabelError", "ModelLoadError", "Prediction", "ProgressArg", "Results", "SearchHit",
    "__version__", "demo_images", "evaluate", "finetune", "load",
]

_LAZY = frozenset({"Classifier", "ImageInput", "Prediction", "ProgressArg", "Results", "SearchHit",
                   "demo_images", "evaluate", "finetune", "load"})


def __getattr__(name: str):
    """The API module (numpy, Pillow) loads on first use, so `import clipdesk` stays instant."""
    if name in _LAZY:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'clipdesk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
