"""Scenes for training and checking the default model: emoji sprites composited by size, place, count and background
colour, the captions that describe them, and the pixel rules that read those attributes back from an image.

A scene is data (which sprite, where, how big, on what colour); `render` turns a batch of scenes into pixels; captions
are drawn per training step from the scene's attributes, so one encoded scene serves many phrasings. The same pixel
rules score the real scenes here and the generated images in `npm run eval:model` (src/bench/eval-attributes.ts
mirrors them), so an attribute the rules cannot read on real scenes is never asked of the model.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 64
# What is painted and read back, shared with the TypeScript eval (src/bench/eval-attributes.ts).
RULES = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "eval", "attributes.json")))
WHITE = tuple(RULES["palette"]["white"])
PALETTE = {name: tuple(rgb) for name, rgb in RULES["palette"].items() if name != "white"}
BACKGROUNDS = ["white", *PALETTE]
# A 3×3 grid: row, column → the words people use.
POSITIONS = {(row, column): name for row, names in enumerate(RULES["positions"]) for column, name in enumerate(names)}
POSITION_NAMES = list(POSITIONS.values())
SIZES = ["small", "large"]
STYLE_WORDS = {"noto": "noto", "twemoji": "twemoji", "fluent": "fluent", "noto-v1": "blob", "fxemoji": "firefox"}
SMALL_PX = (20, 26)
PAIR_PX = (26, 30)

def with_article(name: str) -> str:
    """For synonyms (the vocabulary states each label's own article and plural)."""
    if name.endswith("s") and not name.endswith(("ss", "us", "is", "ous")):
        return name
    return f"{'an' if name[0] in 'aeiou' and not name.startswith(('uni', 'one', 'eu', 'use')) else 'a'} {name}"


def label_with_article(concept: dict, name: str) -> str:
    if name == concept["label"]:
        return f"{concept['article']} {name}" if concept["article"] else name
    return with_article(name)


@dataclass
class Scene:
    sprite: int
    concept: int
    style: str
    kind: str  # plain | background | small | position | pair
    background: str = "white"
    placements: list[tuple[float, float, float]] = field(default_factory=list)  # (size px, centre x, centre y)
    size: str | None = None  # "small" | "large" | None
    position: str | None = None
    count: int = 1

    def attributes(self) -> dict:
        return {"background": self.background, "size": self.size, "position": self.position, "count": self.count}


def sample_scenes(records: list[dict], countable: list[bool], rng: random.Random) -> list[Scene]:
    """Every sprite on white, then on two colours, small (on white and on a colour), in three of the nine places and
    — where one copy of the sprite is a single shape that two copies can be counted by — as a pair."""
    scenes: list[Scene] = []
    colours = list(PALETTE)
    for index, record in enumerate(records):
        base = dict(sprite=index, concept=record["concept"], style=record["style"])
        full = [(64.0, 32.0, 32.0)]
        scenes.append(Scene(**base, kind="plain", placements=full))
        for colour in rng.sample(colours, 2):
            scenes.append(Scene(**base, kind="background", background=colour, placements=full))
        for background in ("white", rng.choice(colours)):
            side = rng.uniform(*SMALL_PX)
            scenes.append(Scene(**base, kind="small", background=background, size="small",
                                placements=[(side, 32 + rng.uniform(-2, 2), 32 + rng.uniform(-2, 2))]))
        for cell in rng.sample(list(POSITIONS), 3):
            side = rng.uniform(*SMALL_PX)
            background = rng.choice(colours) if rng.random() < 0.3 else "white"
            scenes.append(Scene(**base, kind="position", background=background, size="small", position=POSITIONS[cell],
                                placements=[(side, *cell_centre(cell, side, rng))]))
        if countable[index]:
            side = rng.uniform(*PAIR_PX)
            layout = rng.choice(["row", "column", "diagonal", "antidiagonal"])
            a, b = {"row": ((15, 32), (49, 32)), "column": ((32, 15), (32, 49)),
                    "diagonal": ((16, 16), (48, 48)), "antidiagonal": ((48, 16), (16, 48))}[layout]
            jitter = lambda: rng.uniform(-1, 1)  # noqa: E731
            background = rng.choice(colours) if rng.random() < 0.3 else "white"
            scenes.append(Scene(**base, kind="pair", background=background, count=2,
                                placements=[(side, a[0] + jitter(), a[1] + jitter()), (side, b[0] + jitter(), b[1] + jitter())]))
    return scenes


def cell_centre(cell: tuple[int, int], side: float, rng: random.Random) -> tuple[float, float]:
    row, column = cell
    half = side / 2
    centre = lambda k: min(max((2 * k + 1) * SIZE / 6 + rng.uniform(-2, 2), half), SIZE - half)  # noqa: E731
    return centre(column), centre(row)


def render(sprites: torch.Tensor, scenes: list[Scene], rng: random.Random | None = None) -> torch.Tensor:
    """sprites: [N,4,64,64] float RGBA in [0,1] → [B,3,64,64] RGB in [0,1] for the scenes."""
    out = torch.empty(len(scenes), 3, SIZE, SIZE)
    for b, scene in enumerate(scenes):
        colour = WHITE if scene.background == "white" else PALETTE[scene.background]
        jitter = (lambda: rng.uniform(-12, 12)) if rng and scene.background != "white" else (lambda: 0.0)
        canvas = torch.tensor([min(max(c + jitter(), 0), 255) / 255 for c in colour]).view(3, 1, 1).expand(3, SIZE, SIZE).clone()
        for side, cx, cy in scene.placements:
            paste(canvas, sprites[scene.sprite], side, cx, cy)
        out[b] = canvas
    return out


def paste(canvas: torch.Tensor, sprite: torch.Tensor, side: float, cx: float, cy: float) -> None:
    px = max(4, int(round(side)))
    small = sprite if px == SIZE else F.interpolate(sprite[None], size=(px, px), mode="area")[0]
    left, top = int(round(cx - px / 2)), int(round(cy - px / 2))
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + px, SIZE), min(top + px, SIZE)
    if x1 <= x0 or y1 <= y0:
        return
    patch = small[:, y0 - top:y1 - top, x0 - left:x1 - left]
    alpha = patch[3:4]
    canvas[:, y0:y1, x0:x1] = patch[:3] * alpha + canvas[:, y0:y1, x0:x1] * (1 - alpha)


# ------------------------------------------------------------------------------------------------ captions


def name_phrases(concept: dict) -> list[str]:
    return [concept["label"], *concept["synonyms"]]


def caption(scene: Scene, concept: dict, rng: random.Random, style_probability: float = 0.15) -> str:
    """One phrasing of the scene, as people type prompts ("a fox", "fox", "an emoji of a fox", "two foxes on a blue
    background"). A caption states every attribute the scene was built with except 'white', which it may state."""
    names = name_phrases(concept)
    name = concept["label"] if rng.random() < 0.6 or len(names) == 1 else rng.choice(names[1:])
    if scene.count == 2:
        text = rng.choice(["two {}", "two {}", "2 {}", "a pair of {}"]).format(concept["plural"])
    else:
        thing = label_with_article(concept, name) if rng.random() < 0.7 else name
        if scene.size == "small" and (scene.position is None or rng.random() < 0.5):
            thing = with_article(f"{rng.choice(['small', 'small', 'tiny'])} {name}")
        elif scene.kind in ("plain", "background") and rng.random() < 0.1:
            thing = with_article(f"{rng.choice(['large', 'big'])} {name}")
        if scene.kind == "plain" and scene.size is None and rng.random() < 0.25:
            text = rng.choice(["an emoji of {}", "{} emoji", "a picture of {}", "an icon of {}"]).format(thing)
        else:
            text = thing
        if scene.position is not None:
            place = scene.position.replace("center", rng.choice(["center", "middle"])) if "center" in scene.position else scene.position
            text = f"{text} {place}"
    if scene.background != "white":
        text = rng.choice(["{} on a {} background", "{} on a {} background", "{} on {}", "{}, {} background"]).format(text, scene.background)
    elif scene.kind == "plain" and rng.random() < 0.05:
        text = f"{text} on a white background"
    if rng.random() < style_probability:
        text = f"{text}, {STYLE_WORDS[scene.style]} style"
    return text


def caption_size_label(scene: Scene, text: str) -> int:
    """The size class a caption states: 0 none, 1 small, 2 large (the text encoder's size head is trained on it)."""
    words = text.split(" ")
    if "small" in words or "tiny" in words:
        return 1
    if "large" in words or "big" in words:
        return 2
    return 0


# ------------------------------------------------------------------------------------------------ pixel rules


def ring(image: np.ndarray) -> np.ndarray:
    k = RULES["ringPx"]
    return np.concatenate([image[:k].reshape(-1, 3), image[-k:].reshape(-1, 3), image[:, :k].reshape(-1, 3), image[:, -k:].reshape(-1, 3)])


def read_background(image: np.ndarray) -> str:
    """image uint8 [64,64,3] → the palette name nearest the median colour of its outer ring."""
    median = np.median(ring(image), axis=0)
    colours = np.array([WHITE, *PALETTE.values()], dtype=np.float64)
    return BACKGROUNDS[int(np.argmin(((colours - median) ** 2).sum(axis=1)))]


def foreground(image: np.ndarray) -> np.ndarray:
    background = np.median(ring(image), axis=0)
    return np.sqrt(((image.astype(np.float64) - background) ** 2).sum(axis=2)) > RULES["foregroundDistance"]


def read_position(image: np.ndarray) -> str | None:
    mask = foreground(image)
    if mask.sum() < RULES["minForegroundPx"]:
        return None
    ys, xs = np.nonzero(mask)
    cell = (min(int(ys.mean() * 3 / SIZE), 2), min(int(xs.mean() * 3 / SIZE), 2))
    return POSITIONS[cell]


def read_size(image: np.ndarray) -> str | None:
    """'small' when the shapes' bounding box spans at most smallMaxExtentPx, 'large' from largeMinExtentPx.

    Only shapes that count (read_count's) span the box: a decoder leaves a stray off-white pixel in a corner of
    pictures, and one such pixel would otherwise stretch a small thing's box across the picture."""
    boxes = [box for size, box in shapes(foreground(image)) if size >= RULES["minShapePx"]]
    if not boxes:
        return None
    top, left = min(b[0] for b in boxes), min(b[1] for b in boxes)
    bottom, right = max(b[2] for b in boxes), max(b[3] for b in boxes)
    extent = max(bottom - top + 1, right - left + 1)
    return "small" if extent <= RULES["smallMaxExtentPx"] else "large" if extent >= RULES["largeMinExtentPx"] else None


def read_count(image: np.ndarray) -> int:
    """Connected shapes of at least minShapePx in the foreground, after closing one-pixel gaps (4-neighbour growth)."""
    return sum(1 for size, _ in shapes(foreground(image)) if size >= RULES["minShapePx"])


def shapes(mask: np.ndarray) -> list[tuple[int, tuple[int, int, int, int]]]:
    """Each 4-connected shape of the mask after closing one-pixel gaps: its pixel count (gaps closed) and the box
    (top, left, bottom, right) of its own mask pixels."""
    grown = mask.copy()
    grown[1:] |= mask[:-1]; grown[:-1] |= mask[1:]; grown[:, 1:] |= mask[:, :-1]; grown[:, :-1] |= mask[:, 1:]
    seen = np.zeros_like(grown)
    found = []
    height, width = grown.shape
    for y0 in range(height):
        for x0 in range(width):
            if not grown[y0, x0] or seen[y0, x0]:
                continue
            stack, size = [(y0, x0)], 0
            box = [height, width, -1, -1]
            seen[y0, x0] = True
            while stack:
                y, x = stack.pop()
                size += 1
                if mask[y, x]:
                    box = [min(box[0], y), min(box[1], x), max(box[2], y), max(box[3], x)]
                for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if 0 <= ny < height and 0 <= nx < width and grown[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
            found.append((size, tuple(box)))
    return found


def load_sprites(work: str) -> tuple[dict, torch.Tensor]:
    meta = json.load(open(f"{work}/dataset.json"))
    raw = np.fromfile(f"{work}/sprites.u8", dtype=np.uint8).reshape(-1, SIZE, SIZE, 4)
    return meta, torch.from_numpy(raw).permute(0, 3, 1, 2).float().div(255.0)


def countable_sprites(sprites: torch.Tensor) -> list[bool]:
    """A sprite can be counted in pairs when one copy at pair size on white is read as exactly one shape."""
    flags = []
    for index in range(len(sprites)):
        scene = Scene(sprite=index, concept=0, style="", kind="pair", placements=[(28.0, 32.0, 32.0)])
        image = (render(sprites, [scene])[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        flags.append(read_count(image) == 1)
    return flags
