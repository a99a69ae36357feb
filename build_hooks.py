"""Build hook (named in pyproject.toml): ship the top-level `resources/` inside the wheel.

The project keeps `resources/` (model configs, the demo model) at the top of the checkout; a wheel
carries it as `clipdesk/_resources/`, where `clipdesk.core.paths.resources_dir()` looks first.
An editable install needs no copy: it reads the checkout's folder.
"""

from __future__ import annotations

from pathlib import Path

from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent / "resources"
TARGET = Path("clipdesk", "_resources")


def resource_files() -> list[Path]:
    """Every shipped file under resources/, relative to it (no hidden files, no caches)."""
    return sorted(
        path.relative_to(SOURCE) for path in SOURCE.rglob("*")
        if path.is_file() and not any(part.startswith((".", "__pycache__"))
                                      for part in path.relative_to(SOURCE).parts)
    )


class BuildPyWithResources(build_py):
    """`build_py` that also copies resources/ into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for relative in resource_files():
            target = Path(self.build_lib) / TARGET / relative
            self.mkpath(str(target.parent))
            self.copy_file(str(SOURCE / relative), str(target))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not getattr(self, "editable_mode", False):
            outputs += [str(Path(self.build_lib) / TARGET / rel) for rel in resource_files()]
        return outputs
