"""clipdesk from Python, offline: the built-in demo model on its own sample pictures.

    python examples/classify_demo.py

Classify files, in-memory images and a folder; search by text; embed; fine-tune nothing.
Runs anywhere clipdesk is installed (a checkout or a wheel), with no download.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import clipdesk


def main() -> None:
    clf = clipdesk.load("demo")  # loads once; every call below reuses it and its label cache
    images = clipdesk.demo_images()
    labels = ["red circle", "blue star", "yellow triangle", "green square"]

    print("Files:")
    for result in clf.classify(images[:4], labels):
        print(f"  {Path(result.path).name:<24} {result.label:<16} {result.score:.3f}")

    print("In memory (PIL image, numpy array), top 2:")
    picture = Image.open(images[1]).convert("RGB")
    for result in clf.classify([picture, np.asarray(picture)], labels, top_k=2):
        shown = ", ".join(f"{name} {p:.3f}" for name, p in result.scores.items())
        print(f"  image {result.index}: {shown}")

    print("A file that cannot be read is a result with an error, not an exception:")
    missing = clf.classify(["no-such-file.png"], labels)[0]
    print(f"  {missing.error}")

    print("Search 'pink star':")
    for hit in clf.search("pink star", images, top_k=2):
        print(f"  {hit.rank}. {Path(hit.path).name} (cosine {hit.score:.3f})")

    vectors = clf.embed(images)
    print(f"Embeddings: {vectors.shape[0]} × {vectors.shape[1]}, norms {np.linalg.norm(vectors, axis=1).min():.3f}")


if __name__ == "__main__":
    main()
