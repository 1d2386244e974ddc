"""Procedural scenes of coloured shapes, sampled from a `random.Random` and drawn with PIL.

A `Scene` is a plain description (background + objects with pixel geometry) so captions and
annotations are derived from exactly what is drawn. The first object is the primary one: its
box area and painted area are each at least `MIN_AREA_RATIO` times those of any other object,
so "the largest object" is an unambiguous label. Objects never overlap (bounding boxes are
kept apart), so every object mentioned in a caption is fully visible.
Object colours are saturated; background tones are muted so they never read as an object
colour.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (225, 25, 30),
    "green": (20, 165, 45),
    "blue": (30, 70, 235),
    "yellow": (250, 215, 0),
    "purple": (150, 40, 205),
    "orange": (255, 125, 0),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "diamond")
BACKGROUNDS: tuple[str, ...] = ("plain", "striped", "checkered", "gradient", "noise")
BACKGROUND_TONES: tuple[RGB, ...] = (
    (200, 200, 200),
    (120, 120, 125),
    (55, 55, 60),
    (210, 200, 175),
    (165, 180, 190),
    (235, 235, 228),
    (125, 135, 110),
)

PRIMARY_RADIUS_RANGE = (0.18, 0.27)  # fraction of the image side; diameter 36-54 %
SECONDARY_MIN_RADIUS = 0.075
SECONDARY_MAX_RATIO = 0.6
MIN_AREA_RATIO = 2.0
REPEAT_CLASS_PROBABILITY = 0.35
PLACEMENT_ATTEMPTS = 30
SUPERSAMPLE = 2
# Larger rotations would turn a square into a diamond or a cross into an "x".
MAX_ROTATION_DEGREES: dict[str, float] = {
    "circle": 0.0,
    "square": 12.0,
    "triangle": 15.0,
    "star": 36.0,
    "cross": 12.0,
    "diamond": 10.0,
}


def _star_outline(points: int = 5, inner: float = 0.45) -> tuple[tuple[float, float], ...]:
    vertices = []
    for i in range(2 * points):
        radius = 1.0 if i % 2 == 0 else inner
        angle = -math.pi / 2 + i * math.pi / points
        vertices.append((radius * math.cos(angle), radius * math.sin(angle)))
    return tuple(vertices)


_ARM = 0.34
# Outlines fit the square [-1, 1]^2 (unit "radius"); y grows downwards as in images.
UNIT_OUTLINES: dict[str, tuple[tuple[float, float], ...]] = {
    "square": ((-1, -1), (1, -1), (1, 1), (-1, 1)),
    "triangle": ((0, -0.93), (1, 0.8), (-1, 0.8)),
    "star": _star_outline(),
    "cross": (
        (-_ARM, -1), (_ARM, -1), (_ARM, -_ARM), (1, -_ARM), (1, _ARM), (_ARM, _ARM),
        (_ARM, 1), (-_ARM, 1), (-_ARM, _ARM), (-1, _ARM), (-1, -_ARM), (-_ARM, -_ARM),
    ),
    "diamond": ((0, -1), (0.7, 0), (0, 1), (-0.7, 0)),
}


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    cx: float
    cy: float
    radius: float
    rotation: float

    @property
    def classname(self) -> str:
        return f"{self.colour} {self.shape}"

    def outline(self, scale: float = 1.0) -> list[tuple[float, float]]:
        """Polygon vertices in pixels (times `scale`); not defined for circles."""
        cos_r = math.cos(math.radians(self.rotation))
        sin_r = math.sin(math.radians(self.rotation))
        return [
            (
                (self.cx + self.radius * (x * cos_r - y * sin_r)) * scale,
                (self.cy + self.radius * (x * sin_r + y * cos_r)) * scale,
            )
            for x, y in UNIT_OUTLINES[self.shape]
        ]

    def bbox(self) -> tuple[float, float, float, float]:
        """Tight pixel box (x1, y1, x2, y2) of the drawn shape."""
        if self.shape == "circle":
            r = self.radius
            return (self.cx - r, self.cy - r, self.cx + r, self.cy + r)
        xs, ys = zip(*self.outline())
        return (min(xs), min(ys), max(xs), max(ys))

    def box_area(self) -> float:
        x1, y1, x2, y2 = self.bbox()
        return (x2 - x1) * (y2 - y1)

    def filled_area(self) -> float:
        if self.shape == "circle":
            return math.pi * self.radius**2
        points = self.outline()
        return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2)
                       in zip(points, points[1:] + points[:1]))) / 2


@dataclass(frozen=True)
class Background:
    kind: str
    tones: tuple[RGB, RGB]
    period: int  # stripe / checker period in output pixels
    orientation: str  # "horizontal" | "vertical" | "diagonal"
    noise_seed: int


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    background: Background
    objects: tuple[SceneObject, ...]

    def normalized_boxes(self) -> list[tuple[float, float, float, float]]:
        boxes = []
        for obj in self.objects:
            x1, y1, x2, y2 = obj.bbox()
            boxes.append((
                min(max(x1 / self.width, 0.0), 1.0),
                min(max(y1 / self.height, 0.0), 1.0),
                min(max(x2 / self.width, 0.0), 1.0),
                min(max(y2 / self.height, 0.0), 1.0),
            ))
        return boxes


def sample_background(rng: random.Random, kind: str) -> Background:
    if kind not in BACKGROUNDS:
        raise ValueError(f"unknown background {kind!r}; expected one of {BACKGROUNDS}")
    first, second = rng.sample(BACKGROUND_TONES, 2)
    return Background(
        kind=kind,
        tones=(first, second),
        period=rng.randint(6, 16),
        orientation=rng.choice(("horizontal", "vertical", "diagonal")),
        noise_seed=rng.getrandbits(32),
    )


def _overlaps(box: tuple[float, ...], others: list[tuple[float, ...]], gap: float) -> bool:
    return any(
        box[0] < o[2] + gap and o[0] < box[2] + gap and box[1] < o[3] + gap and o[1] < box[3] + gap
        for o in others
    )


def _place(rng: random.Random, template: SceneObject, size: int,
           placed: list[SceneObject]) -> SceneObject | None:
    """`template` moved to a random spot inside the image clear of `placed`, if one is found."""
    x1, y1, x2, y2 = template.bbox()
    placed_boxes = [o.bbox() for o in placed]
    for _ in range(PLACEMENT_ATTEMPTS):
        candidate = replace(template, cx=rng.uniform(1 - x1, size - 1 - x2),
                            cy=rng.uniform(1 - y1, size - 1 - y2))
        if not _overlaps(candidate.bbox(), placed_boxes, gap=1.0):
            return candidate
    return None


def _secondary_radius(rng: random.Random, unit: SceneObject, primary: SceneObject,
                      image_size: int) -> float:
    # Both the box and the painted area of a secondary object stay at most half the primary's,
    # whatever the two shapes are, so the labelled object is unambiguously the largest.
    cap = min(
        SECONDARY_MAX_RATIO * primary.radius,
        math.sqrt(primary.box_area() / (MIN_AREA_RATIO * unit.box_area())),
        math.sqrt(primary.filled_area() / (MIN_AREA_RATIO * unit.filled_area())),
    )
    return rng.uniform(min(SECONDARY_MIN_RADIUS * image_size, cap), cap)


def sample_scene(rng: random.Random, image_size: int = 64, min_objects: int = 1,
                 max_objects: int = 4, background: str | None = None) -> Scene:
    """A random scene; fewer than `min_objects` only if secondary objects cannot be placed."""
    num_objects = rng.randint(min_objects, max_objects)
    primary_radius = rng.uniform(*PRIMARY_RADIUS_RANGE) * image_size
    objects: list[SceneObject] = []
    for index in range(num_objects):
        if objects and rng.random() < REPEAT_CLASS_PROBABILITY:
            source = rng.choice(objects)
            colour, shape = source.colour, source.shape
        else:
            colour, shape = rng.choice(tuple(COLOURS)), rng.choice(SHAPES)
        max_rotation = MAX_ROTATION_DEGREES[shape]
        unit = SceneObject(shape, colour, 0.0, 0.0, 1.0, rng.uniform(-max_rotation, max_rotation))
        if index == 0:
            radius = primary_radius
        else:
            radius = _secondary_radius(rng, unit, objects[0], image_size)
        placed = _place(rng, replace(unit, radius=radius), image_size, objects)
        if placed is not None:
            objects.append(placed)
    kind = background if background is not None else rng.choice(BACKGROUNDS)
    return Scene(image_size, image_size, sample_background(rng, kind), tuple(objects))


def render_background(background: Background, width: int, height: int,
                      scale: int = 1) -> np.ndarray:
    """uint8 [height*scale, width*scale, 3] array of the background pattern."""
    h, w = height * scale, width * scale
    first = np.array(background.tones[0], dtype=np.float32)
    second = np.array(background.tones[1], dtype=np.float32)
    # Broadcast [h, 1] and [1, w] coordinates instead of materialising full grids.
    ys = np.arange(h, dtype=np.float32)[:, None] / scale
    xs = np.arange(w, dtype=np.float32)[None, :] / scale
    period = background.period
    if background.kind in ("plain", "noise"):
        mix = np.zeros((1, 1), dtype=np.float32)
    elif background.kind == "striped":
        coord = {"horizontal": ys, "vertical": xs, "diagonal": xs + ys}[background.orientation]
        mix = np.floor(coord / (period / 2)) % 2
    elif background.kind == "checkered":
        cell = max(period // 2, 2)
        mix = (np.floor(xs / cell) + np.floor(ys / cell)) % 2
    elif background.kind == "gradient":
        mix = {"horizontal": xs / width, "vertical": ys / height,
               "diagonal": (xs / width + ys / height) / 2}[background.orientation]
    else:
        raise ValueError(f"unknown background {background.kind!r}; expected one of {BACKGROUNDS}")
    pixels = np.broadcast_to(first + mix[..., None] * (second - first), (h, w, 3))
    if background.kind == "noise":
        noise = np.random.default_rng(background.noise_seed).normal(0.0, 28.0, size=(h, w, 1))
        pixels = pixels + noise.astype(np.float32)
    return np.clip(pixels + 0.5, 0, 255).astype(np.uint8)


def render_scene(scene: Scene, supersample: int = SUPERSAMPLE) -> Image.Image:
    """RGB image of the scene, drawn at `supersample`x and box-downsampled for smooth edges."""
    pattern = render_background(scene.background, scene.width, scene.height, supersample)
    canvas = Image.fromarray(pattern)
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        fill = COLOURS[obj.colour]
        if obj.shape == "circle":
            draw.ellipse([v * supersample for v in obj.bbox()], fill=fill)
        else:
            draw.polygon(obj.outline(supersample), fill=fill)
    return canvas.reduce(supersample) if supersample > 1 else canvas
