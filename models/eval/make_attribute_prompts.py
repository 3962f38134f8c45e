"""Write the attribute prompts `npm run eval:model` scores by pixel rules, and a fixture of real scenes with what the
Python rules read from them (the TypeScript rules are tested against it).

    cd models/train && /usr/bin/python3 ../eval/make_attribute_prompts.py

Reads models/train/work/{sprites.u8,dataset.json}. Writes models/eval/attribute_prompts.json (background, position,
size and count prompts, each with the value the rules must read) and test/fixtures/attribute-scenes.json.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
from scenes import (PALETTE, POSITIONS, Scene, countable_sprites, label_with_article, load_sprites,  # noqa: E402
                    read_background, read_count, read_position, read_size, render, sample_scenes)

PER_VALUE = 10


def main() -> None:
    work = os.path.join(HERE, "..", "train", "work")
    meta, sprites = load_sprites(work)
    concepts, records = meta["concepts"], meta["records"]
    countable = countable_sprites(sprites)
    # A concept can be asked for in pairs when its Noto and Twemoji sprites are each one shape and its label has a plural.
    single_shape: dict[int, list[bool]] = {}
    for flag, record in zip(countable, records):
        if record["style"] in ("noto", "twemoji"):
            single_shape.setdefault(record["concept"], []).append(flag)
    pairable = [c for c, flags in single_shape.items() if all(flags) and concepts[c]["plural"]]
    rng = random.Random(0)
    named = lambda c: label_with_article(concepts[c], concepts[c]["label"])  # noqa: E731

    prompts = []
    for colour in PALETTE:
        for c in rng.sample(range(len(concepts)), PER_VALUE):
            prompts.append({"attribute": "background", "expected": colour, "concept": concepts[c]["id"],
                            "prompt": f"{named(c)} on a {colour} background"})
    for position in POSITIONS.values():
        for c in rng.sample(range(len(concepts)), PER_VALUE):
            prompts.append({"attribute": "position", "expected": position, "concept": concepts[c]["id"], "prompt": f"{named(c)} {position}"})
    for size in ("small", "large"):
        for c in rng.sample(range(len(concepts)), 4 * PER_VALUE):
            thing = f"{size} {concepts[c]['label']}"
            prompts.append({"attribute": "size", "expected": size, "concept": concepts[c]["id"],
                            "prompt": f"{'an' if thing[0] in 'aeiou' else 'a'} {thing}"})
    for c in rng.sample(pairable, 8 * PER_VALUE):
        prompts.append({"attribute": "count", "expected": 2, "concept": concepts[c]["id"], "prompt": f"two {concepts[c]['plural']}"})
    with open(os.path.join(HERE, "attribute_prompts.json"), "w") as file:
        json.dump({"about": "Prompts scored by pixel rules in npm run eval:model (models/eval/make_attribute_prompts.py).",
                   "prompts": prompts}, file, indent=1)
        file.write("\n")

    scenes = sample_scenes(records, countable, random.Random(0))
    chosen = [s for kind in ("plain", "background", "small", "position", "pair") for s in random.Random(1).sample([s for s in scenes if s.kind == kind], 8)]
    images = (render(sprites, chosen).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    fixture = []
    for scene, image in zip(chosen, images):
        png = io.BytesIO()
        Image.fromarray(image).save(png, format="PNG")
        fixture.append({"kind": scene.kind, "png": base64.b64encode(png.getvalue()).decode("ascii"),
                        "background": read_background(image), "position": read_position(image), "size": read_size(image),
                        "count": read_count(image)})
    with open(os.path.join(HERE, "..", "..", "test", "fixtures", "attribute-scenes.json"), "w") as file:
        json.dump({"about": "Real training scenes and what models/train/scenes.py's pixel rules read from them.", "scenes": fixture}, file)
        file.write("\n")
    print(json.dumps({"prompts": len(prompts), "pairable_concepts": len(pairable), "fixture_scenes": len(fixture)}))


if __name__ == "__main__":
    main()
