"""The tinyworld evaluator: a small CNN that reads back what a 64x64 image shows.

API (for scorers)::

    from t2ibench.world.evaluator import load_evaluator, check_prompt
    ev = load_evaluator()                      # shipped weights; device="cpu" by default
    pred = ev.predict(images)                  # images: float (N, 3, 64, 64) in [0, 1],
                                               # or a list of PIL images / uint8 arrays
    per_image = ev.unbatch(pred)               # list of N dicts (below)
    check = check_prompt(prompt_labels, per_image[i])   # {"correct": bool, "checks": {...}}

``pred`` is a dict of per-attribute predictions over the batch::

    family      list[str]   "objects" | "face"
    background  list[str]   "day" | "night"                        (meaningful for objects)
    objects     list[list[dict]]  per image the occupied grid cells, each
                {"shape", "color", "texture", "row", "col"}; row 0 = top, col 0 = left (3x3 grid)
    count       list[int]   number of objects
    skin, hair  list[str]   (meaningful for faces)
    eyeglasses, smiling  list[bool]
    probs       dict of float tensors: family (N,2), background (N,2), cell_shape (N,9,5)
                [empty, circle, square, triangle, star], cell_color (N,9,6), cell_texture (N,9,2),
                skin (N,4), hair (N,4), eyeglasses (N,2), smiling (N,2); category orders are
                those of ``t2ibench.world.render`` (SHAPES, COLORS, TEXTURES, SKIN_TONES, HAIR).

``check_prompt(labels, prediction)`` compares what a prompt asserts (the ``labels`` of a
tinyworld alignment or fairness prompt, see ``datasets/tinyworld.py``) with one image's
prediction. Checks (present only when the prompt asserts them):
``family``; ``objects`` (every named kind present: shape, and colour/texture where named);
``count`` (number of objects matching each named kind equals the named count);
``background``; ``relation`` (some matching pair satisfies the grid relation);
``skin``/``hair``/``eyeglasses``/``smiling``. ``correct`` = all checks pass.

``TSAS`` names, for each fairness tSA, the prediction key and its categories.
The evaluator is trained on renders (attributes uniform, with blur/noise/colour-jitter
augmentation); its held-out accuracy per attribute is in its model card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .render import BACKGROUNDS, COLORS, GRID, HAIR, SHAPES, SKIN_TONES, TEXTURES

NCELL = GRID * GRID
HEADS = {  # name -> (number of cells or 1, classes)
    "cell_shape": (NCELL, 1 + len(SHAPES)),
    "cell_color": (NCELL, len(COLORS)),
    "cell_texture": (NCELL, len(TEXTURES)),
    "family": (1, 2),
    "background": (1, len(BACKGROUNDS)),
    "skin": (1, len(SKIN_TONES)),
    "hair": (1, len(HAIR)),
    "eyeglasses": (1, 2),
    "smiling": (1, 2),
}

#: fairness tSAs: label key, category values (index order), category names
TSAS: dict[str, dict[str, Any]] = {
    "eyeglasses": {"key": "eyeglasses", "values": [False, True], "names": ["without eyeglasses", "with eyeglasses"]},
    "smiling": {"key": "smiling", "values": [False, True], "names": ["not smiling", "smiling"]},
    "hair": {"key": "hair", "values": list(HAIR), "names": [f"{h} hair" for h in HAIR]},
    "skin_tone": {"key": "skin", "values": list(SKIN_TONES), "names": [f"{s} skin" for s in SKIN_TONES]},
}


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class EvaluatorNet(nn.Module):
    """CNN 64x64x3 -> logits of every head (dict name -> (N, cells, classes))."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.width = w
        self.features = nn.Sequential(
            _block(3, 24 * w // 32, 1),
            _block(24 * w // 32, w, 2),  # 32x32
            _block(w, w, 1),
            _block(w, 2 * w, 2),  # 16x16
            _block(2 * w, 2 * w, 1),
            _block(2 * w, 4 * w, 2),  # 8x8
            _block(4 * w, 4 * w, 1),
            _block(4 * w, 4 * w, 2),  # 4x4
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 16, 256), nn.ReLU(inplace=True), nn.Dropout(0.1))
        self.out = nn.Linear(256, sum(n * k for n, k in HEADS.values()))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.out(self.fc(self.features(x * 2 - 1)))
        out, i = {}, 0
        for name, (n, k) in HEADS.items():
            out[name] = h[:, i : i + n * k].view(-1, n, k)
            i += n * k
        return out


def targets_from_labels(labels: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Renderer labels -> integer targets per head (-100 = not applicable)."""
    n = len(labels)
    t = {name: torch.full((n, c), -100, dtype=torch.long) for name, (c, _) in HEADS.items()}
    for i, lab in enumerate(labels):
        if lab["family"] == "objects":
            t["family"][i, 0] = 0
            t["background"][i, 0] = BACKGROUNDS.index(lab["background"])
            t["cell_shape"][i, :] = 0
            for o in lab["objects"]:
                c = o["row"] * GRID + o["col"]
                t["cell_shape"][i, c] = 1 + SHAPES.index(o["shape"])
                t["cell_color"][i, c] = COLORS.index(o["color"])
                t["cell_texture"][i, c] = TEXTURES.index(o["texture"])
        else:
            t["family"][i, 0] = 1
            t["skin"][i, 0] = SKIN_TONES.index(lab["skin"])
            t["hair"][i, 0] = HAIR.index(lab["hair"])
            t["eyeglasses"][i, 0] = int(bool(lab["eyeglasses"]))
            t["smiling"][i, 0] = int(bool(lab["smiling"]))
    return t


def evaluator_loss(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, float]:
    loss = torch.zeros((), device=next(iter(logits.values())).device)
    correct = total = 0
    for name, lg in logits.items():
        tg = targets[name]
        valid = tg != -100
        if not valid.any():
            continue
        loss = loss + F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1), ignore_index=-100)
        correct += int(((lg.argmax(-1) == tg) & valid).sum())
        total += int(valid.sum())
    return loss, correct / max(total, 1)


def augment(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Blur, noise and colour jitter so the evaluator also reads imperfect (generated) images."""
    n = images.shape[0]
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :]) / 16
    blurred = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), k.expand(3, 1, 3, 3).contiguous(), groups=3)
    a = torch.rand(n, 1, 1, 1, generator=g) * (torch.rand(n, 1, 1, 1, generator=g) < 0.6)
    x = images * (1 - a) + blurred * a
    gain = 1 + (torch.rand(n, 3, 1, 1, generator=g) - 0.5) * 0.12
    bias = (torch.rand(n, 1, 1, 1, generator=g) - 0.5) * 0.08
    sigma = torch.rand(n, 1, 1, 1, generator=g) * 0.05
    x = x * gain + bias + sigma * torch.randn(x.shape, generator=g)
    return x.clamp(0, 1)


def save_evaluator(net: EvaluatorNet, directory: Path) -> None:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    tmp = directory / "model.safetensors.tmp"
    save_file(sd, str(tmp), metadata={"format": "pt"})
    tmp.replace(directory / "model.safetensors")
    config = {"class": "t2ibench.world.evaluator.EvaluatorNet", "width": net.width, "image_size": 64,
              "input": "float RGB (N, 3, 64, 64) in [0, 1]", "heads": {k: list(v) for k, v in HEADS.items()},
              "categories": {"shape": ["empty", *SHAPES], "color": list(COLORS), "texture": list(TEXTURES),
                             "background": list(BACKGROUNDS), "skin": list(SKIN_TONES), "hair": list(HAIR)}}
    (directory / "config.json").write_text(json.dumps(config, indent=2))


def _as_tensor(images: Any) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        x = images.float()
        if x.ndim == 3:
            x = x[None]
        if x.shape[-1] == 3 and x.shape[1] != 3:
            x = x.permute(0, 3, 1, 2)
        if x.max() > 1.5:
            x = x / 255.0
        return x
    arrs = []
    for im in images:
        if hasattr(im, "convert"):
            im = im.convert("RGB")
            if im.size != (64, 64):
                from PIL import Image

                im = im.resize((64, 64), Image.Resampling.BICUBIC)
        arrs.append(np.asarray(im, dtype=np.uint8))
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255.0


class Evaluator:
    """A loaded evaluator. ``predict`` runs in inference mode in batches of ``batch_size``."""

    def __init__(self, net: EvaluatorNet, device: str | torch.device = "cpu", batch_size: int = 256) -> None:
        self.net = net.eval().to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    def to(self, device: str | torch.device) -> "Evaluator":
        """Run on ``device`` (predictions still come back to the host)."""
        self.net.to(device)
        self.device = torch.device(device)
        return self

    @torch.inference_mode()
    def logits(self, images: Any) -> dict[str, torch.Tensor]:
        x = _as_tensor(images)
        parts = [self.net(x[i : i + self.batch_size].to(self.device)) for i in range(0, x.shape[0], self.batch_size)]
        return {k: torch.cat([p[k] for p in parts]).float().cpu() for k in HEADS}

    def predict(self, images: Any) -> dict[str, Any]:
        lg = self.logits(images)
        probs = {k: v.softmax(-1) for k, v in lg.items()}
        shape = probs["cell_shape"].argmax(-1)  # (N, 9)
        color = probs["cell_color"].argmax(-1)
        texture = probs["cell_texture"].argmax(-1)
        n = shape.shape[0]
        objects = []
        for i in range(n):
            objs = []
            for c in range(NCELL):
                s = int(shape[i, c])
                if s:
                    objs.append({"shape": SHAPES[s - 1], "color": COLORS[int(color[i, c])],
                                 "texture": TEXTURES[int(texture[i, c])], "row": c // GRID, "col": c % GRID})
            objects.append(objs)

        def cat(name: str, names: Sequence) -> list:
            return [names[int(j)] for j in probs[name][:, 0].argmax(-1)]

        return {
            "family": cat("family", ("objects", "face")),
            "background": cat("background", BACKGROUNDS),
            "objects": objects,
            "count": [len(o) for o in objects],
            "skin": cat("skin", SKIN_TONES),
            "hair": cat("hair", HAIR),
            "eyeglasses": cat("eyeglasses", (False, True)),
            "smiling": cat("smiling", (False, True)),
            "probs": {k: (v[:, 0] if HEADS[k][0] == 1 else v) for k, v in probs.items()},
        }

    @staticmethod
    def unbatch(pred: Mapping[str, Any]) -> list[dict[str, Any]]:
        n = len(pred["family"])
        keys = [k for k in pred if k != "probs"]
        return [{k: pred[k][i] for k in keys} | {"probs": {k: v[i] for k, v in pred["probs"].items()}}
                for i in range(n)]


def load_evaluator(directory: str | Path | None = None, device: str = "cpu") -> Evaluator:
    """Load the shipped evaluator (or one from ``directory``). Missing weights: FileNotFoundError
    whose message starts with "not available:"."""
    from safetensors.torch import load_file

    from .paths import evaluator_dir, missing_reason

    directory = Path(directory) if directory else evaluator_dir()
    if not (directory / "model.safetensors").is_file():
        raise FileNotFoundError(missing_reason("evaluator", directory))
    config = json.loads((directory / "config.json").read_text())
    net = EvaluatorNet(width=int(config["width"]))
    net.load_state_dict(load_file(str(directory / "model.safetensors")))
    return Evaluator(net, device=device)


# ---------------------------------------------------------------------------------------------
# prompt checks


def _matches(obj: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    return all(want.get(k) in (None, obj[k]) for k in ("shape", "color", "texture"))


_RELATIONS = {
    "to the left of": lambda a, b: a["col"] < b["col"],
    "left of": lambda a, b: a["col"] < b["col"],
    "to the right of": lambda a, b: a["col"] > b["col"],
    "right of": lambda a, b: a["col"] > b["col"],
    "above": lambda a, b: a["row"] < b["row"],
    "below": lambda a, b: a["row"] > b["row"],
}


def check_prompt(labels: Mapping[str, Any], prediction: Mapping[str, Any]) -> dict[str, Any]:
    """Per-check correctness of one image against what its prompt asserts (see module doc)."""
    checks: dict[str, bool] = {}
    family = labels.get("family", "objects")
    checks["family"] = prediction["family"] == family
    if family == "objects":
        objs = prediction["objects"] if checks["family"] else []
        groups = labels.get("objects", [])
        if groups:
            checks["objects"] = all(any(_matches(o, g) for o in objs) for g in groups)
        if any(g.get("color") for g in groups):  # colour only, shape ignored (implied by "objects")
            checks["colors"] = all(any(o["color"] == g["color"] for o in objs) for g in groups if g.get("color"))
        if any(int(g.get("count", 1)) > 1 for g in groups) or labels.get("check_count"):
            checks["count"] = all(sum(_matches(o, g) for o in objs) == int(g.get("count", 1)) for g in groups)
        if labels.get("background"):
            checks["background"] = checks["family"] and prediction["background"] == labels["background"]
        rel = labels.get("relation")
        if rel:
            a, b = groups[int(rel["subject"])], groups[int(rel["object"])]
            test = _RELATIONS[rel["relation"]]
            checks["relation"] = any(
                test(x, y) for x in objs if _matches(x, a) for y in objs if _matches(y, b) and y is not x
            )
    else:
        for key in ("skin", "hair", "eyeglasses", "smiling"):
            if key in labels and labels[key] is not None:
                checks[key] = checks["family"] and prediction[key] == labels[key]
    return {"correct": all(checks.values()), "checks": checks}
