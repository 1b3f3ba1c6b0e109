"""COCO2014 validation captions, the common text-to-image protocol.

From a user-supplied ``captions_val2014.json`` (COCO's annotation file; it cannot be
downloaded here): ``limit`` image ids (default 30,000; 10,000 is the other common size) are
drawn without replacement with ``random.Random(sample_seed)`` from the sorted ids, and one
caption per image is drawn with the same generator. Each prompt's meta carries the COCO image
id and file name, so the matching ``val2014`` images serve as the FID reference set.
Captions are whitespace-normalised; nothing else is changed.
"""

from __future__ import annotations

import json
import random

from t2ibench.errors import UserError
from t2ibench.types import PromptItem

from ._io import read_text, require

DEFAULT_SIZE = 30_000


def load_captions(params: dict, *, limit: int | None = None, sample_seed: int = 0, where: str = "prompt_sets") -> list[PromptItem]:
    """``limit`` (default 30k) captions, one per sampled val2014 image."""
    path = require(params, "path", where, "the path of captions_val2014.json")
    try:
        data = json.loads(read_text(path, f"{where}.params.path"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}.params.path: {path}: invalid JSON at line {exc.lineno}; expected COCO captions JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise UserError(f"{where}.params.path: {path}: no 'annotations' list; expected COCO captions JSON (captions_val2014.json)")
    by_image: dict[int, list[tuple[int, str]]] = {}
    for ann in data["annotations"]:
        try:
            by_image.setdefault(int(ann["image_id"]), []).append((int(ann.get("id", 0)), str(ann["caption"])))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{where}.params.path: {path}: an annotation lacks image_id/caption; expected COCO captions JSON") from None
    files = {int(im["id"]): im.get("file_name") for im in data.get("images", []) if "id" in im}
    ids = sorted(by_image)
    size = min(limit or DEFAULT_SIZE, len(ids))
    rng = random.Random(sample_seed)
    chosen = sorted(rng.sample(ids, size))
    items = []
    for image_id in chosen:
        caps = sorted(by_image[image_id])
        _, caption = caps[rng.randrange(len(caps))]
        meta = {"coco_image_id": image_id, "file_name": files.get(image_id) or f"COCO_val2014_{image_id:012d}.jpg"}
        items.append(PromptItem(id=f"coco{image_id:012d}", text=" ".join(caption.split()), meta=meta))
    return items
