"""FID image preprocessing: PIL images → float32 (B, 3, S, S) in [0, 1] for a feature network.

Optionally centre-crop to a square (``crop``; clean-fid resizes the whole image), then resize to
``size`` with ``"clean"`` (clean-fid's ``clean`` mode: PIL bicubic per channel in float mode,
clipped to [0, 255], kept as floats: ``cleanfid/resize.py:41-57``, ``make_resizer("PIL", False,
"bicubic")``) or ``"pytorch-fid"`` (torch bilinear, align_corners=False, no antialias: pytorch-fid's resize and
clean-fid's ``legacy_pytorch``; *not* torchmetrics, whose torch-fidelity Inception resizes uint8
input TF1-style).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class Preprocess:
    """Centre-crop to a square (``crop``), resize to ``size``×``size``; output float32 (B, 3, S, S) in [0, 1].

    resize: ``"clean"`` = clean-fid's ``clean`` mode: PIL bicubic on each channel in float mode
    ("F"), not quantised, clipped to [0, 255] as clean-fid's ``resize_single_channel`` does
    (``clamp``; False keeps the bicubic overshoot, which clean-fid does not);
    ``"pytorch-fid"`` = torch bilinear, align_corners=False, no antialias, applied to the 0-255
    image (pytorch-fid's resize; clean-fid's ``legacy_pytorch``). ``crop``: False resizes the
    whole image (clean-fid; non-square images are stretched).
    """

    size: int = 299
    resize: str = "clean"
    crop: bool = True
    clamp: bool = True

    def __post_init__(self) -> None:
        if self.resize not in ("clean", "pytorch-fid"):
            raise ValueError(f"resize {self.resize!r}; expected 'clean' or 'pytorch-fid'")

    def describe(self) -> str:
        crop = "centre-crop, " if self.crop else "no crop (whole image), "
        if self.resize == "clean":
            kind = ("PIL bicubic in float, not quantised, " + ("clipped to [0, 255] (clean-fid 'clean')" if self.clamp
                    else "not clipped (clean-fid 'clean' clips)"))
        else:
            kind = "torch bilinear, no antialias (pytorch-fid; clean-fid 'legacy_pytorch'; not torchmetrics)"
        return f"{crop}resize to {self.size}x{self.size} {kind}"

    def _crop(self, image):
        image = image.convert("RGB")
        if not self.crop:
            return image
        w, h = image.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        return image.crop((left, top, left + s, top + s))

    def __call__(self, images: Sequence[Any]) -> torch.Tensor:
        from PIL import Image

        out = []
        for image in images:
            image = self._crop(image)
            arr = np.asarray(image, dtype=np.uint8)
            if self.resize == "clean":
                if image.size != (self.size, self.size):
                    chans = [
                        np.asarray(
                            Image.fromarray(arr[:, :, c].astype(np.float32), mode="F").resize(
                                (self.size, self.size), resample=Image.Resampling.BICUBIC
                            ),
                            dtype=np.float32,
                        )
                        for c in range(3)
                    ]
                    arr_f = np.stack(chans, axis=2)
                else:
                    arr_f = arr.astype(np.float32)
                t = torch.from_numpy(np.clip(arr_f, 0, 255) if self.clamp else arr_f).permute(2, 0, 1)
            else:
                t = torch.from_numpy(arr.copy()).permute(2, 0, 1).float()
                if image.size != (self.size, self.size):
                    t = torch.nn.functional.interpolate(
                        t[None], size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=False
                    )[0]
            out.append(t / 255.0)
        return torch.stack(out)
