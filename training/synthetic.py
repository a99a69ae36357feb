"""A procedurally generated, captioned world of coloured shapes, for the built-in demo CLIP.

Scenes hold one or two shapes (8 shapes × 8 colours) of varied size and position on plain,
coloured or textured backgrounds; each scene comes with many natural-language captions in varied
phrasings. A fixed set of (colour, shape) combinations is held out: `training_scene` never draws
them, so a model trained on it and tested on them is zero-shot for real. Every draw comes from a
seeded numpy Generator, so the same seed gives the same images and captions on any machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "orange": (250, 140, 20),
    "yellow": (245, 225, 40),
    "green": (40, 165, 60),
    "blue": (35, 80, 225),
    "purple": (135, 55, 195),
    "pink": (250, 125, 200),
    "white": (245, 245, 245),
}
# No hexagon: at 64 px it is a circle with corners, and the demo should test naming, not eyesight.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "cross", "heart", "ring")
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
# 12 of 64 pairs (19%): a diagonal plus half of a second one, so every colour and every shape is
# held out at most twice and still appears in training with at least six partners.
HELD_OUT: tuple[tuple[str, str], ...] = tuple(
    [(COLOUR_NAMES[i], SHAPES[(i + 1) % 8]) for i in range(8)]
    + [(COLOUR_NAMES[i], SHAPES[(i + 4) % 8]) for i in range(4)]
)
ALL_PAIRS: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLOUR_NAMES for s in SHAPES)
SEEN_PAIRS: tuple[tuple[str, str], ...] = tuple(p for p in ALL_PAIRS if p not in HELD_OUT)
SUPERSAMPLE = 4  # shapes are drawn 4× larger and box-filtered down: smooth edges at 64 px


@dataclass
class Shape:
    colour: str
    shape: str
    cx: float  # centre, as a fraction of the image side
    cy: float
    size: float  # bounding-box side, as a fraction of the image side
    angle: float = 0.0  # degrees

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def size_word(self) -> str:
        return "small" if self.size < 0.3 else "large" if self.size > 0.45 else ""

    @property
    def place(self) -> str:
        """Where a lone shape sits, in words ("" when near the centre)."""
        dx, dy = self.cx - 0.5, self.cy - 0.5
        if max(abs(dx), abs(dy)) < 0.1:
            return "in the center"
        if abs(dx) >= abs(dy):
            return "on the left" if dx < 0 else "on the right"
        return "at the top" if dy < 0 else "at the bottom"


@dataclass
class Scene:
    shapes: list[Shape]
    background: str  # "plain", "textured", or a colour name
    grey: int  # base grey level of plain and textured backgrounds
    texture: str = ""  # "noise", "stripes" or "checks" for textured backgrounds
    texture_seed: int = 0
    layout: str = ""  # for two shapes: "horizontal" or "vertical"
    jitter: list[tuple[int, int, int]] = field(default_factory=list)  # per-shape colour jitter

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(s.colour, s.shape) for s in self.shapes]


# -- sampling ---------------------------------------------------------------------------------
def sample_scene(rng: np.random.Generator, pairs=ALL_PAIRS, n_objects: int | None = None) -> Scene:
    """A random scene whose shapes are drawn from `pairs`; two shapes never share a colour."""
    if n_objects is None:
        n_objects = 1 if rng.random() < 0.6 else 2
    chosen: list[tuple[str, str]] = []
    while len(chosen) < n_objects:
        pair = pairs[rng.integers(len(pairs))]
        if all(pair[0] != c and pair[1] != s for c, s in chosen):
            chosen.append(pair)
    shapes, layout = _place(rng, chosen)
    used = {s.colour for s in shapes}
    kind = rng.random()
    background, texture = "plain", ""
    if kind < 0.25:
        background = str(rng.choice([c for c in COLOUR_NAMES if c not in used and c != "white"]))
    elif kind < 0.6:
        background, texture = "textured", str(rng.choice(["noise", "stripes", "checks"]))
    grey = int(rng.integers(20, 190))
    jitter = [tuple(int(v) for v in rng.integers(-18, 19, size=3)) for _ in shapes]
    return Scene(shapes, background, grey, texture, int(rng.integers(1 << 30)), layout, jitter)


def _place(rng: np.random.Generator, chosen: list[tuple[str, str]]) -> tuple[list[Shape], str]:
    def angle(shape: str) -> float:
        return 0.0 if shape in ("circle", "ring") else float(rng.uniform(-15, 15))

    if len(chosen) == 1:
        size = float(rng.uniform(0.22, 0.6))
        half = size / 2 + 0.02
        (colour, shape), = chosen
        return [Shape(colour, shape, float(rng.uniform(half, 1 - half)),
                      float(rng.uniform(half, 1 - half)), size, angle(shape))], ""
    layout = "horizontal" if rng.random() < 0.5 else "vertical"
    shapes = []
    for index, (colour, shape) in enumerate(chosen):
        size = float(rng.uniform(0.22, 0.4))
        half = size / 2 + 0.02
        along = float(rng.uniform(half, 0.5 - 0.01 - size / 2)) + 0.5 * index  # its own half
        across = float(rng.uniform(half, 1 - half))
        cx, cy = (along, across) if layout == "horizontal" else (across, along)
        shapes.append(Shape(colour, shape, cx, cy, size, angle(shape)))
    return shapes, layout


def training_scene(rng: np.random.Generator) -> Scene:
    """A scene that never contains a held-out combination."""
    return sample_scene(rng, SEEN_PAIRS)


# -- drawing ----------------------------------------------------------------------------------
def render(scene: Scene, size: int = 64) -> Image.Image:
    """Draw a scene as an RGB image of `size`×`size` pixels."""
    canvas = _background(scene, size).astype(np.float32)
    for shape, jitter in zip(scene.shapes, scene.jitter or [(0, 0, 0)] * len(scene.shapes)):
        mask = np.asarray(_mask(shape, size), dtype=np.float32)[..., None] / 255.0
        colour = np.clip(np.array(COLOURS[shape.colour]) + np.array(jitter), 0, 255)
        canvas = canvas * (1 - mask) + colour.astype(np.float32) * mask
    return Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), "RGB")


def _background(scene: Scene, size: int) -> np.ndarray:
    if scene.background in COLOURS:
        # A muted version of the colour, so a shape on it still stands out.
        colour = 0.7 * np.array(COLOURS[scene.background]) + 0.3 * scene.grey
        return np.broadcast_to(colour, (size, size, 3)).copy()
    base = np.full((size, size, 3), float(scene.grey))
    if scene.background != "textured":
        return base
    rng = np.random.default_rng(scene.texture_seed)
    ys, xs = np.mgrid[0:size, 0:size] / size
    if scene.texture == "noise":
        noise = rng.normal(0, 1, (size // 4 + 1, size // 4 + 1))
        noise = np.asarray(Image.fromarray(noise.astype(np.float32)).resize((size, size), Image.BILINEAR))
        pattern = 18 * noise
    elif scene.texture == "stripes":
        theta = rng.uniform(0, math.pi)
        pattern = 22 * np.sign(np.sin((xs * math.cos(theta) + ys * math.sin(theta)) * rng.uniform(12, 30)))
    else:
        cells = rng.integers(4, 9)
        pattern = 22 * (((xs * cells).astype(int) + (ys * cells).astype(int)) % 2 * 2 - 1)
    return np.clip(base + pattern[..., None], 0, 255)


def _mask(shape: Shape, size: int) -> Image.Image:
    big = size * SUPERSAMPLE
    image = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(image)
    cx, cy, r = shape.cx * big, shape.cy * big, shape.size * big / 2
    if shape.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape.shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        inner = r * 0.55
        draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
    elif shape.shape == "heart":
        _heart(draw, cx, cy, r, shape.angle)
    else:
        draw.polygon(_polygon(shape.shape, cx, cy, r, shape.angle), fill=255)
    return image.reduce(SUPERSAMPLE)


def _rotate(points, cx: float, cy: float, angle: float) -> list[tuple[float, float]]:
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in points]


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "square":
        s = r * 0.85
        points = [(-s, -s), (s, -s), (s, s), (-s, s)]
    elif shape == "triangle":
        points = [(r * math.cos(math.radians(a)), r * math.sin(math.radians(a)) + r * 0.15)
                  for a in (-90, 30, 150)]
    elif shape == "star":
        points = [((r if k % 2 == 0 else r * 0.42) * math.cos(math.radians(-90 + 36 * k)),
                   (r if k % 2 == 0 else r * 0.42) * math.sin(math.radians(-90 + 36 * k)) + r * 0.08)
                  for k in range(10)]
    elif shape == "diamond":
        points = [(0, -r), (r * 0.62, 0), (0, r), (-r * 0.62, 0)]
    elif shape == "cross":
        a, b = r, r * 0.33
        points = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b),
                  (-a, b), (-a, -b), (-b, -b)]
    else:
        raise ValueError(f"unknown shape {shape}")
    return _rotate(points, cx, cy, angle)


def _heart(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    # The classic parametric heart curve, scaled into the shape's box.
    points = []
    for k in range(48):
        t = 2 * math.pi * k / 48
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        points.append((x * r / 16.5, (y + 2.5) * r / 16.5))
    draw.polygon(_rotate(points, cx, cy, angle), fill=255)


# -- captions ---------------------------------------------------------------------------------
_ONE = (
    "{a} {size}{name}", "{a} {size}{name}", "{name}", "a photo of {a} {size}{name}.",
    "a picture of {a} {size}{name}", "a drawing of {a} {size}{name}", "{a} {size}{name} {place}",
    "{a} {size}{name} on {bg}", "a photo of {an} {name} on {bg}.", "the {shape} is {colour}",
    "{ash} {shape} coloured {colour}", "{an} {colour} {shape} shape", "one {size}{name}",
    "there is {a} {size}{name} {place}", "an image of {a} {size}{name}",
)
_TWO = (
    "{a1} {n1} and {a2} {n2}", "two shapes: {a1} {n1} and {a2} {n2}", "{n1} and {n2}",
    "{a1} {n1} {rel} {a2} {n2}", "a photo of {a1} {n1} and {a2} {n2}.",
    "{a1} {n1} next to {a2} {n2}", "{a1} {n1} and {a2} {n2} on {bg}",
    "a picture of two shapes, {a1} {n1} and {a2} {n2}",
)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _background_words(scene: Scene) -> str:
    if scene.background in COLOURS:
        return f"a {scene.background} background"
    if scene.background == "textured":
        return {"noise": "a noisy background", "stripes": "a striped background",
                "checks": "a checkered background"}[scene.texture]
    return "a dark background" if scene.grey < 90 else "a gray background"


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """One caption for a scene, in a randomly chosen phrasing."""
    bg = _background_words(scene)
    if len(scene.shapes) == 1:
        s = scene.shapes[0]
        size = f"{s.size_word} " if s.size_word and rng.random() < 0.7 else ""
        template = _ONE[rng.integers(len(_ONE))]
        first = f"{size}{s.colour}"
        text = template.format(a=_article(first), an=_article(s.colour), ash=_article(s.shape),
                               sa=_article(f"{size}{s.shape}"), size=size, name=s.name,
                               place=s.place, bg=bg, shape=s.shape, colour=s.colour)
        return " ".join(text.split())
    first, second = scene.shapes
    relation = ("to the left of", "to the right of") if scene.layout == "horizontal" else ("above", "below")
    if rng.random() < 0.5:
        first, second = second, first
        relation = relation[::-1]
    template = _TWO[rng.integers(len(_TWO))]
    return template.format(a1=_article(first.colour), n1=first.name, a2=_article(second.colour),
                           n2=second.name, rel=relation[0], bg=bg, c1=first.colour, c2=second.colour,
                           s1=first.shape, s2=second.shape, sa1=_article(first.shape),
                           sa2=_article(second.shape))


def label_prompt(colour: str, shape: str) -> str:
    """The suggested label for a combination (used as-is with templates "none")."""
    return f"{colour} {shape}"


def class_names() -> list[str]:
    return [label_prompt(c, s) for c, s in ALL_PAIRS]
