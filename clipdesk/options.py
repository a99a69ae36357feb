"""Argument types and the model options every clipdesk command line shares: `clipdesk classify /
search / index`, `clipdesk finetune / evaluate` (training/cli.py) and `clipdesk-gui`.

They were defined four times and drifted (help texts, and `_fraction` meant (0, 1] in one CLI and
(0, 1) in the other). Light on purpose: argparse and constants only, so `--help` stays instant.
"""

from __future__ import annotations

import argparse

from .core.models import DEFAULT_ARCH, DEFAULT_PRETRAINED
from .core.prompts import TEMPLATE_SET_NAMES

DEVICES = ("auto", "cpu", "cuda", "gpu", "mps")
BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("fp32", "int8")
TEMPLATE_CHOICES = TEMPLATE_SET_NAMES
MAX_BATCH = 4096  # decoded images in flight scale with it: beyond this memory, not speed, grows


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def batch_size(text: str) -> int:
    """A batch size from 1 to MAX_BATCH."""
    value = positive_int(text)
    if value > MAX_BATCH:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_BATCH}")
    return value


def _unit_interval(text: str, include_one: bool) -> float:
    """The one range check behind both fraction types: above 0, and below (or up to) 1."""
    value = float(text)
    inside = 0.0 < value <= 1.0 if include_one else 0.0 < value < 1.0  # comparisons refuse nan
    if not inside:
        raise argparse.ArgumentTypeError("must be above 0 and at most 1" if include_one
                                         else "must be between 0 and 1 (both excluded)")
    return value


def fraction_up_to_1(text: str) -> float:
    """A number in (0, 1]: a score threshold, where 1 keeps only the best label."""
    return _unit_interval(text, include_one=True)


def fraction_below_1(text: str) -> float:
    """A number in (0, 1): a share held out for validation, where 1 would leave nothing to train."""
    return _unit_interval(text, include_one=False)


def add_model_options(parser: argparse.ArgumentParser, *, backend: bool = True, precision: bool = True,
                      defaults: bool = True) -> argparse._ArgumentGroup:
    """`--model`, `--pretrained`, `--device` (and `--backend`, `--precision` where the command has
    a choice of inference backend). `defaults=False` leaves device and backend None, for a caller
    (the window) whose saved settings fill them in."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None,
                       help=f"open_clip architecture, or 'demo' (default {DEFAULT_ARCH}, or the --pretrained folder's)")
    group.add_argument("--pretrained", default=None,
                       help="pretrained tag, checkpoint file or fine-tuned model folder, 'none' or 'demo' "
                            f"(default {DEFAULT_PRETRAINED})")
    group.add_argument("--device", default="auto" if defaults else None, choices=DEVICES,
                       help="inference device (default auto: a GPU when there is one)")
    if backend:
        group.add_argument("--backend", default="auto" if defaults else None, choices=BACKENDS,
                           help="auto: ONNX Runtime on CPU, torch on CUDA")
    if precision:
        group.add_argument("--precision", default="fp32", choices=PRECISIONS,
                           help="int8: dynamically quantised ONNX encoders (faster, slightly less accurate)")
    return group


def add_templates_option(parser: argparse.ArgumentParser) -> None:
    """`--templates`; None when not given, so `prompts.default_templates` decides (the model's own)."""
    parser.add_argument("--templates", default=None, choices=TEMPLATE_CHOICES,
                        help="prompt templates (default photo, or those the model was fine-tuned with)")
