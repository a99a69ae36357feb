"""clipdesk's version, a floor below everything that records it (the package, the ONNX export)."""

__version__ = "0.1.0"  # keep equal to pyproject.toml's `version`
