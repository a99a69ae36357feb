"""Every command line takes the same model options and fraction ranges, and `clipdesk.cli` and
`clipdesk.scale.cli` do not import each other (not even inside a function)."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from clipdesk.cli import build_parser
from clipdesk.qt.app import build_parser as gui_parser

ROOT = Path(__file__).resolve().parents[1]


def subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices[name]


PARSERS = {name: (lambda name=name: subparser(name))
           for name in ("classify", "search", "index", "finetune", "evaluate")}
PARSERS["clipdesk-gui"] = gui_parser


def option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_model_options_are_the_same_everywhere(name):
    parser = PARSERS[name]()
    assert tuple(option(parser, "--device").choices) == ("auto", "cpu", "cuda", "gpu", "mps")
    for flag in ("--model", "--pretrained"):
        assert "demo" in option(parser, flag).help  # one help text, which names the demo model
    with pytest.raises(SystemExit):
        parser.parse_args(["--device", "tpu"])  # argparse exits 2 with its usage line


@pytest.mark.parametrize("name", ["classify", "search", "index", "clipdesk-gui"])
def test_inference_commands_offer_the_same_backends(name):
    assert tuple(option(PARSERS[name](), "--backend").choices) == ("auto", "torch", "onnx")


def parses(parser: argparse.ArgumentParser, argv: list[str]) -> bool:
    try:
        parser.parse_args(argv)
    except SystemExit:
        return False
    return True


@pytest.mark.parametrize("value", ["0", "-0.1", "nan", "1.5", "x"])
def test_both_fraction_ranges_refuse_the_same_outside(value, capsys):
    assert not parses(build_parser(), ["classify", "p", "--threshold", value])
    assert not parses(build_parser(), ["finetune", "f", "--val-split", value])
    capsys.readouterr()


def test_threshold_includes_1_and_val_split_excludes_it(capsys):
    """A threshold of 1 keeps only the best label; holding out every image leaves nothing to train."""
    assert build_parser().parse_args(["classify", "p", "--threshold", "1"]).threshold == 1.0
    assert not parses(build_parser(), ["finetune", "f", "--val-split", "1"])
    assert build_parser().parse_args(["finetune", "f", "--val-split", "0.999"]).val_split == 0.999
    assert "between 0 and 1 (both excluded)" in capsys.readouterr().err


def imported_modules(path: Path) -> set[str]:
    """Every clipdesk module `path` imports, at module level or inside functions, resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_cli_and_scale_cli_import_no_circle():
    scale_cli = imported_modules(ROOT / "clipdesk" / "scale" / "cli.py")
    assert "clipdesk.cli" not in scale_cli and not any(m.startswith("clipdesk.cli.") for m in scale_cli)
    shared = imported_modules(ROOT / "clipdesk" / "commands.py") | imported_modules(ROOT / "clipdesk" / "options.py")
    assert not {"clipdesk.cli", "clipdesk.scale.cli"} & shared  # the floor below imports neither
    assert "clipdesk.scale.cli" in imported_modules(ROOT / "clipdesk" / "cli.py")
