"""Procedural, seeded scenes of coloured shapes with captions: the built-in model's world.

Every image the built-in model was trained on comes from this module, and the semantic
tests use it to build prompts, reference images and sketches.  A scene is a plain
:class:`SceneSpec` (background plus zero to three shapes); :func:`render` draws it,
:func:`caption` writes its caption in a small fixed grammar, :func:`parse_caption` reads
that grammar back, and :func:`scribble` draws the shapes' outlines as thin dark strokes
on white, as a user's sketch for the scribble ControlNet.

Grammar (``[]`` optional, ``|`` alternatives)::

    caption    := objects " on " article " " background
                | colour " background"                                   (plain)
                | article " " colour " background on the left and " article " "
                  colour " background on the right"                      (split)
    objects    := object (" and " object)*                               (1 to 3)
    object     := article " " [size " "] colour " " shape [" " position]
    size       := "small" | "big"                                        (absent: medium)
    position   := "on the left" | "on the right" | "at the top" | "at the bottom"
                | "in the center"
    background := colour " background" | colour " to " colour " gradient background"
    (a plain background caption is just ``colour " background"``, a plain gradient one
    ``article " " colour " to " colour " gradient background"``)

The article is "an" before a vowel ("an orange circle") and "a" otherwise; the parser
accepts either.  When no object names a position, the default layout applies: one shape in the center;
two on the left and on the right; three on the left, in the center and on the right.

Images are ``uint8`` RGB arrays of shape ``(size, size, 3)`` (straight colour, no alpha).
Coordinates in a spec are resolution-independent: positions and sizes are fractions of
the image side, so one spec renders consistently at 64, 128 or 512 px.

Only numpy and Pillow are used, so tests import this cheaply.
"""

from __future__ import annotations

import colorsys
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
from PIL import Image, ImageDraw

log = logging.getLogger(__name__)

__all__ = [
    "COLOURS",
    "CHROMATIC_COLOURS",
    "Background",
    "BackgroundKind",
    "CaptionError",
    "Colour",
    "Position",
    "Shape",
    "ShapeSpec",
    "SceneSpec",
    "Size",
    "caption",
    "caption_words",
    "colour_of",
    "hue_distance",
    "parse_caption",
    "random_scene",
    "render",
    "rgb_to_hsv",
    "scribble",
    "shape_mask",
]


@dataclass(frozen=True)
class Colour:
    """A named colour: ``rgb`` in 0..255, ``hue`` in degrees 0..360 (None for greys)."""

    name: str
    rgb: tuple[int, int, int]

    @property
    def hue(self) -> float | None:
        h, s, _v = colorsys.rgb_to_hsv(*(c / 255.0 for c in self.rgb))
        return None if s < 0.25 else h * 360.0

    @property
    def saturation(self) -> float:
        return colorsys.rgb_to_hsv(*(c / 255.0 for c in self.rgb))[1]

    @property
    def value(self) -> float:
        return colorsys.rgb_to_hsv(*(c / 255.0 for c in self.rgb))[2]

    @property
    def chromatic(self) -> bool:
        return self.hue is not None


_COLOUR_LIST: tuple[Colour, ...] = (
    Colour("red", (225, 25, 25)),
    Colour("orange", (250, 135, 10)),
    Colour("yellow", (250, 225, 20)),
    Colour("green", (30, 185, 45)),
    Colour("cyan", (20, 205, 215)),
    Colour("blue", (25, 55, 230)),
    Colour("purple", (140, 35, 205)),
    Colour("pink", (250, 100, 185)),
    Colour("white", (245, 245, 245)),
    Colour("black", (20, 20, 20)),
)

#: Colour name -> :class:`Colour`, in a fixed order.
COLOURS: dict[str, Colour] = {c.name: c for c in _COLOUR_LIST}
#: Names of the colours that have a hue (everything but white and black).
CHROMATIC_COLOURS: tuple[str, ...] = tuple(c.name for c in _COLOUR_LIST if c.chromatic)


class Shape(Enum):
    CIRCLE = "circle"
    SQUARE = "square"
    TRIANGLE = "triangle"
    STAR = "star"


class Position(Enum):
    """Where a shape sits; the value is the caption phrase."""

    CENTER = "in the center"
    LEFT = "on the left"
    RIGHT = "on the right"
    TOP = "at the top"
    BOTTOM = "at the bottom"

    @property
    def centre(self) -> tuple[float, float]:
        """Shape centre as (x, y) fractions of the image side."""
        return _POSITION_CENTRES[self]


_POSITION_CENTRES: dict[Position, tuple[float, float]] = {
    Position.CENTER: (0.5, 0.5),
    Position.LEFT: (0.25, 0.5),
    Position.RIGHT: (0.75, 0.5),
    Position.TOP: (0.5, 0.25),
    Position.BOTTOM: (0.5, 0.75),
}


class Size(Enum):
    """Shape size; the value is the caption word ('' for the unnamed medium size)."""

    SMALL = "small"
    MEDIUM = ""
    BIG = "big"

    @property
    def radius(self) -> float:
        """Circumradius-like extent as a fraction of the image side."""
        return _SIZE_RADII[self]


_SIZE_RADII: dict[Size, float] = {Size.SMALL: 0.11, Size.MEDIUM: 0.17, Size.BIG: 0.25}


class BackgroundKind(Enum):
    FLAT = "flat"
    GRADIENT = "gradient"  # ``colour`` at the top blending to ``colour2`` at the bottom
    SPLIT = "split"  # ``colour`` on the left half, ``colour2`` on the right half


@dataclass(frozen=True)
class Background:
    kind: BackgroundKind
    colour: str
    colour2: str | None = None


@dataclass(frozen=True)
class ShapeSpec:
    shape: Shape
    colour: str
    position: Position = Position.CENTER
    size: Size = Size.MEDIUM


@dataclass(frozen=True)
class SceneSpec:
    """One scene. ``explicit_positions`` says whether the caption names the positions
    even where they equal the default layout."""

    background: Background
    shapes: tuple[ShapeSpec, ...] = ()
    explicit_positions: bool = False


class CaptionError(ValueError):
    """A caption does not follow the shapes grammar."""


def colour_of(name: str) -> Colour:
    """The named colour; raises KeyError with the known names otherwise."""
    try:
        return COLOURS[name]
    except KeyError:
        raise KeyError(f"unknown colour {name!r}; known: {', '.join(COLOURS)}") from None


def default_positions(count: int) -> tuple[Position, ...]:
    """The layout a caption without position phrases means, for ``count`` shapes."""
    return {
        0: (),
        1: (Position.CENTER,),
        2: (Position.LEFT, Position.RIGHT),
        3: (Position.LEFT, Position.CENTER, Position.RIGHT),
    }[count]


# --------------------------------------------------------------------------- captions


def article(word: str) -> str:
    """'an' before a vowel sound, else 'a' (the grammar's only article rule)."""
    return "an" if word[0] in "aeiou" else "a"


def _object_phrase(s: ShapeSpec, with_position: bool) -> str:
    words = [s.size.value] if s.size.value else []
    words += [s.colour, s.shape.value]
    if with_position:
        words.append(s.position.value)
    return f"{article(words[0])} " + " ".join(words)


def caption(spec: SceneSpec) -> str:
    """The caption of ``spec`` in the module grammar (see the module docstring)."""
    bg = spec.background
    if bg.kind is BackgroundKind.SPLIT:
        if spec.shapes:
            raise CaptionError("split backgrounds are captioned only without shapes")
        assert bg.colour2 is not None
        return (
            f"{article(bg.colour)} {bg.colour} background on the left and "
            f"{article(bg.colour2)} {bg.colour2} background on the right"
        )
    if bg.kind is BackgroundKind.GRADIENT:
        bg_phrase = f"{bg.colour} to {bg.colour2} gradient background"
    else:
        bg_phrase = f"{bg.colour} background"
    if not spec.shapes:
        return bg_phrase if bg.kind is BackgroundKind.FLAT else f"{article(bg_phrase)} {bg_phrase}"
    defaults = default_positions(len(spec.shapes))
    named = spec.explicit_positions or tuple(s.position for s in spec.shapes) != defaults
    objects = " and ".join(_object_phrase(s, named) for s in spec.shapes)
    return f"{objects} on {article(bg_phrase)} {bg_phrase}"


def loose_caption(spec: SceneSpec) -> str:
    """The caption of ``spec`` naming only *what* is drawn — shapes, colours and the
    background — and not *where* or *how big*: the prompt a user writes when a sketch
    gives the layout. Every shape is captioned as medium-sized at the default layout."""
    defaults = default_positions(len(spec.shapes))
    shapes = tuple(
        ShapeSpec(s.shape, s.colour, pos, Size.MEDIUM) for s, pos in zip(spec.shapes, defaults)
    )
    return caption(SceneSpec(spec.background, shapes))


_POSITION_BY_WORDS = {tuple(p.value.split()): p for p in Position}
_SIZE_BY_WORD = {s.value: s for s in Size if s.value}
_SHAPE_BY_WORD = {s.value: s for s in Shape}


def _expect(words: list[str], i: int, *options: str) -> str:
    if i >= len(words) or words[i] not in options:
        got = words[i] if i < len(words) else "the end"
        raise CaptionError(f"expected {' or '.join(map(repr, options))} at word {i}, got {got!r}")
    return words[i]


def _colour_word(words: list[str], i: int) -> str:
    return _expect(words, i, *COLOURS)


def parse_caption(text: str) -> SceneSpec:
    """Read a caption written by :func:`caption` back into a :class:`SceneSpec`.

    Raises :class:`CaptionError` when ``text`` is not in the grammar.
    """
    words = ["a" if w == "an" else w for w in text.strip().lower().split()]
    if not words:
        raise CaptionError("empty caption")
    # plain background: "<colour> background" / "a <c> to <c> gradient background"
    if len(words) == 2 and words[1] == "background":
        return SceneSpec(Background(BackgroundKind.FLAT, _colour_word(words, 0)))
    if words[-1] == "background" and "on" not in words:
        _expect(words, 0, "a")
        c1 = _colour_word(words, 1)
        _expect(words, 2, "to")
        c2 = _colour_word(words, 3)
        _expect(words, 4, "gradient")
        if len(words) != 6:
            raise CaptionError("trailing words after the gradient background")
        return SceneSpec(Background(BackgroundKind.GRADIENT, c1, c2))
    if len(words) == 13 and words[2] == "background" and words[-1] == "right":
        expected = ["a", "{}", "background", "on", "the", "left", "and", "a", "{}", "background", "on", "the", "right"]
        c1, c2 = _colour_word(words, 1), _colour_word(words, 8)
        for k, w in enumerate(expected):
            if w != "{}" and words[k] != w:
                raise CaptionError(f"split background caption differs at word {k}: {words[k]!r}")
        return SceneSpec(Background(BackgroundKind.SPLIT, c1, c2))

    shapes: list[tuple[Shape, str, Size, Position | None]] = []
    i = 0
    while True:
        _expect(words, i, "a")
        i += 1
        size = Size.MEDIUM
        if i < len(words) and words[i] in _SIZE_BY_WORD:
            size = _SIZE_BY_WORD[words[i]]
            i += 1
        colour = _colour_word(words, i)
        i += 1
        shape = _SHAPE_BY_WORD[_expect(words, i, *_SHAPE_BY_WORD)]
        i += 1
        position: Position | None = None
        for phrase, pos in _POSITION_BY_WORDS.items():
            # "on a <colour> background" also starts with "on": match the whole phrase.
            if tuple(words[i : i + len(phrase)]) == phrase:
                position = pos
                i += len(phrase)
                break
        shapes.append((shape, colour, size, position))
        if i < len(words) and words[i] == "and":
            i += 1
            continue
        break
    if len(shapes) > 3:
        raise CaptionError("at most three shapes")
    _expect(words, i, "on")
    _expect(words, i + 1, "a")
    rest = words[i + 2 :]
    if len(rest) == 2 and rest[1] == "background":
        bg = Background(BackgroundKind.FLAT, _colour_word(rest, 0))
    elif len(rest) == 5 and rest[1] == "to" and rest[3:] == ["gradient", "background"]:
        bg = Background(BackgroundKind.GRADIENT, _colour_word(rest, 0), _colour_word(rest, 2))
    else:
        raise CaptionError(f"cannot read the background phrase {' '.join(rest)!r}")
    named = [p is not None for _s, _c, _z, p in shapes]
    if any(named) and not all(named):
        raise CaptionError("either every shape names its position or none does")
    defaults = default_positions(len(shapes))
    specs = tuple(
        ShapeSpec(shape, colour, p if p is not None else defaults[k], size)
        for k, (shape, colour, size, p) in enumerate(shapes)
    )
    explicit = all(named) and tuple(s.position for s in specs) == defaults
    return SceneSpec(bg, specs, explicit_positions=explicit)


def caption_words() -> list[str]:
    """Every word the grammar can produce, sorted (the tokenizer vocabulary)."""
    words = {"a", "an", "and", "on", "background", "to", "gradient"}
    words.update(COLOURS)
    words.update(s.value for s in Shape)
    words.update(s.value for s in Size if s.value)
    for p in Position:
        words.update(p.value.split())
    return sorted(words)


# --------------------------------------------------------------------------- drawing

_SUPERSAMPLE = 4


def _shape_points(
    s: ShapeSpec,
    side: float,
    jitter: np.ndarray | None = None,
    *,
    centre: tuple[float, float] | None = None,
    radius: float | None = None,
) -> list[tuple[float, float]]:
    """Polygon (or circle approximation) of ``s`` in pixel coordinates of a ``side`` image;
    ``centre`` and ``radius`` (fractions of the side) override its position and size."""
    cx, cy = (v * side for v in (centre if centre is not None else s.position.centre))
    r = (radius if radius is not None else s.size.radius) * side
    if s.shape is Shape.CIRCLE:
        n = 48
        angles = [2 * math.pi * k / n for k in range(n)]
        pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]
    elif s.shape is Shape.SQUARE:
        h = r * 0.85
        pts = [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    elif s.shape is Shape.TRIANGLE:
        pts = [
            (cx + r * math.cos(a), cy + 0.12 * r + r * math.sin(a))
            for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)
        ]
    else:  # star
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            rr = r if k % 2 == 0 else r * 0.45
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    if jitter is not None:
        pts = [(x + float(j[0]), y + float(j[1])) for (x, y), j in zip(pts, jitter)]
    return pts


def _background_array(bg: Background, size: int) -> np.ndarray:
    c1 = np.array(colour_of(bg.colour).rgb, dtype=np.float32)
    if bg.kind is BackgroundKind.FLAT:
        return np.broadcast_to(c1, (size, size, 3)).astype(np.float32)
    assert bg.colour2 is not None
    c2 = np.array(colour_of(bg.colour2).rgb, dtype=np.float32)
    if bg.kind is BackgroundKind.GRADIENT:
        t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
        return np.broadcast_to(c1 * (1 - t) + c2 * t, (size, size, 3)).astype(np.float32)
    out = np.empty((size, size, 3), dtype=np.float32)
    out[:, : size // 2] = c1
    out[:, size // 2 :] = c2
    return out


def shape_mask(s: ShapeSpec, size: int) -> np.ndarray:
    """Anti-aliased coverage of one shape, float32 in 0..1, shape ``(size, size)``."""
    big = size * _SUPERSAMPLE
    im = Image.new("L", (big, big), 0)
    ImageDraw.Draw(im).polygon(_shape_points(s, big), fill=255)
    im = im.resize((size, size), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.float32) / 255.0


def render(spec: SceneSpec, size: int = 64) -> np.ndarray:
    """Draw ``spec`` as a ``(size, size, 3)`` uint8 RGB image (shapes in list order)."""
    img = _background_array(spec.background, size).copy()
    for s in spec.shapes:
        m = shape_mask(s, size)[..., None]
        img = img * (1 - m) + np.array(colour_of(s.colour).rgb, dtype=np.float32) * m
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- regional scenes

#: Where a region layer may lie in a regional training scene: (x0, y0, x1, y1) fractions
#: of the side. The four quadrants and the four halves, as an artist paints a region.
REGION_LAYOUTS: dict[str, tuple[float, float, float, float]] = {
    "top-left": (0.0, 0.0, 0.5, 0.5),
    "top-right": (0.5, 0.0, 1.0, 0.5),
    "bottom-left": (0.0, 0.5, 0.5, 1.0),
    "bottom-right": (0.5, 0.5, 1.0, 1.0),
    "left": (0.0, 0.0, 0.5, 1.0),
    "right": (0.5, 0.0, 1.0, 1.0),
    "top": (0.0, 0.0, 1.0, 0.5),
    "bottom": (0.0, 0.5, 1.0, 1.0),
}


@dataclass(frozen=True)
class RegionScene:
    """One shape inside a region box on a flat background: what a document with one
    region layer (``region_caption`` over ``box``) and a main prompt
    (``background_caption``) should generate. ``box`` is (x0, y0, x1, y1) fractions."""

    image: np.ndarray  # (size, size, 3) uint8
    box: tuple[float, float, float, float]
    region_caption: str  # "a green triangle" (no position: the region says where)
    background_caption: str  # "a blue background"


def region_mask(box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """The box as a float32 ``(size, size)`` coverage (1 inside)."""
    x0, y0, x1, y1 = (int(round(v * size)) for v in box)
    out = np.zeros((size, size), np.float32)
    out[y0:y1, x0:x1] = 1.0
    return out


def random_region_scene(rng: np.random.Generator, layout: str, size: int = 64) -> RegionScene:
    """A shape of a random kind and colour centred in ``layout``'s box (a little jitter),
    as large as fits, over a flat background of a far colour."""
    box = REGION_LAYOUTS[layout]
    bg = _pick(rng, list(COLOURS))
    colour = _pick(rng, _far_colours(bg))
    shape = list(Shape)[int(rng.integers(len(Shape)))]
    w, h = box[2] - box[0], box[3] - box[1]
    radius = 0.5 * min(w, h) * float(rng.uniform(0.55, 0.8))
    cx = (box[0] + box[2]) / 2 + float(rng.uniform(-0.1, 0.1)) * w
    cy = (box[1] + box[3]) / 2 + float(rng.uniform(-0.1, 0.1)) * h
    spec = ShapeSpec(shape, colour)
    big = size * _SUPERSAMPLE
    im = Image.new("L", (big, big), 0)
    ImageDraw.Draw(im).polygon(_shape_points(spec, big, centre=(cx, cy), radius=radius), fill=255)
    m = np.asarray(im.resize((size, size), Image.Resampling.BOX), dtype=np.float32)[..., None] / 255.0
    img = _background_array(Background(BackgroundKind.FLAT, bg), size) * (1 - m)
    img = img + np.array(colour_of(colour).rgb, dtype=np.float32) * m
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return RegionScene(image, box, f"{article(colour)} {colour} {shape.value}", f"{article(bg)} {bg} background")


def scribble(
    spec: SceneSpec,
    size: int = 64,
    *,
    rng: np.random.Generator | None = None,
    width: float | None = None,
) -> np.ndarray:
    """The shapes' outlines as dark strokes on white, ``(size, size, 3)`` uint8.

    ``width`` is the stroke width in pixels (default ``size / 40``, at least 1.5). With
    ``rng`` the vertices wobble by up to ~2 % of the side, like a hand-drawn sketch.
    Backgrounds draw nothing (a sketch shows the objects only).
    """
    big = size * _SUPERSAMPLE
    w = (width if width is not None else max(1.5, size / 40)) * _SUPERSAMPLE
    im = Image.new("L", (big, big), 255)
    draw = ImageDraw.Draw(im)
    for s in spec.shapes:
        jitter = None
        if rng is not None:
            jitter = rng.normal(0.0, 0.008 * big, size=(48, 2))
        pts = _shape_points(s, big, jitter)
        draw.line([*pts, pts[0]], fill=0, width=max(1, int(round(w))), joint="curve")
    im = im.resize((size, size), Image.Resampling.BOX)
    grey = np.asarray(im, dtype=np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


# --------------------------------------------------------------------------- colour maths


def rgb_to_hsv(img: np.ndarray) -> np.ndarray:
    """Vectorised RGB -> HSV. ``img`` uint8 or float in 0..255, returns float32 with
    hue in degrees 0..360 and saturation, value in 0..1, same leading shape."""
    rgb = np.asarray(img, dtype=np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = rgb.max(axis=-1)
    mn = rgb.min(axis=-1)
    d = mx - mn
    safe = np.where(d == 0, 1.0, d)
    h = np.where(
        mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)
    )
    h = np.where(d == 0, 0.0, h * 60.0)
    s = np.where(mx == 0, 0.0, d / np.where(mx == 0, 1.0, mx))
    return np.stack([h, s, mx], axis=-1).astype(np.float32)


def hue_distance(a: float | np.ndarray, b: float | np.ndarray) -> float | np.ndarray:
    """Shortest distance between hues in degrees (0..180)."""
    d = np.abs(np.asarray(a) - np.asarray(b)) % 360.0
    out = np.minimum(d, 360.0 - d)
    return float(out) if np.ndim(out) == 0 else out


# --------------------------------------------------------------------------- sampling


def _pick(rng: np.random.Generator, options: Sequence[str], exclude: Sequence[str] = ()) -> str:
    pool = [o for o in options if o not in exclude]
    return pool[int(rng.integers(len(pool)))]


def _far_colours(name: str, min_hue_gap: float = 40.0) -> list[str]:
    """Colours clearly distinguishable from ``name`` (hue gap, or chromatic vs grey)."""
    base = colour_of(name)
    out = []
    for c in COLOURS.values():
        if c.name == name:
            continue
        if base.hue is None or c.hue is None or hue_distance(base.hue, c.hue) >= min_hue_gap:
            out.append(c.name)
    return out


def random_scene(rng: np.random.Generator) -> SceneSpec:
    """Draw one random scene; the mix favours saturated colours and positional captions.

    Mix: 42 % one shape, 30 % two, 10 % three, 9 % plain background, 9 % split
    background. Shape colours always differ clearly from the background colour.
    """
    names = list(COLOURS)
    u = float(rng.random())
    if u < 0.09:
        return SceneSpec(Background(BackgroundKind.FLAT, _pick(rng, names)))
    if u < 0.18:
        c1 = _pick(rng, names)
        return SceneSpec(Background(BackgroundKind.SPLIT, c1, _pick(rng, _far_colours(c1))))
    count = 1 if u < 0.60 else (2 if u < 0.90 else 3)
    bg_colour = _pick(rng, names)
    if rng.random() < 0.15:
        bg = Background(
            BackgroundKind.GRADIENT, bg_colour, _pick(rng, _far_colours(bg_colour, 30.0))
        )
    else:
        bg = Background(BackgroundKind.FLAT, bg_colour)
    avoid = {bg.colour} | ({bg.colour2} if bg.colour2 else set())
    allowed = [n for n in names if all(n in _far_colours(a) for a in avoid)]
    if count == 1:
        positions: tuple[Position, ...] = (
            Position.CENTER if rng.random() < 0.4 else list(Position)[int(rng.integers(5))],
        )
    elif count == 2:
        layouts = [
            (Position.LEFT, Position.RIGHT),
            (Position.RIGHT, Position.LEFT),
            (Position.TOP, Position.BOTTOM),
            (Position.BOTTOM, Position.TOP),
        ]
        positions = layouts[int(rng.choice(4, p=[0.45, 0.25, 0.15, 0.15]))]
    else:
        positions = default_positions(3)
    shapes_list = list(Shape)
    shapes: list[ShapeSpec] = []
    used: list[str] = []
    for pos in positions:
        # distinct colours between shapes so a caption binds each colour to one place
        colour = _pick(rng, allowed, exclude=used) if len(allowed) > len(used) else _pick(rng, allowed)
        used.append(colour)
        if count == 1:
            size = [Size.SMALL, Size.MEDIUM, Size.BIG][int(rng.choice(3, p=[0.25, 0.4, 0.35]))]
        else:
            size = Size.SMALL if rng.random() < 0.35 else Size.MEDIUM
        shapes.append(ShapeSpec(shapes_list[int(rng.integers(len(shapes_list)))], colour, pos, size))
    explicit = bool(rng.random() < 0.5) if count > 1 else bool(rng.random() < 0.2)
    explicit = explicit and positions == default_positions(count)
    return SceneSpec(bg, tuple(shapes), explicit_positions=explicit)
