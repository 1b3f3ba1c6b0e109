"""Device-placement checks without a GPU (see tests/methods/test_device_placement.py)."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

MOVES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}


class MixedDevices(TorchDispatchMode):
    """Records ops (other than explicit moves) whose tensor arguments are on more than one device.

    0-d CPU tensors are scalars (allowed with any device, as in CUDA) and do not count.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mixed: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in MOVES:
            devices = {t.device for t in tree_leaves((args, kwargs))
                       if isinstance(t, torch.Tensor) and not (t.device.type == "cpu" and t.dim() == 0)}
            if len(devices) > 1:
                self.mixed.append(f"{func}: {sorted(map(str, devices))}")
        return func(*args, **kwargs)
