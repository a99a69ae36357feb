"""clipdesk: zero-shot image classification and search with CLIP."""

__version__ = "0.1.0"
