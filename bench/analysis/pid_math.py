"""Partial information decomposition of two terms from pointwise mutual information values.

DiffusionPID's decomposition (Williams–Beer lattice with an I_min-style redundancy), applied to
pointwise values ``i1 = i(x; y1)``, ``i2 = i(x; y2)``, ``i12 = i(x; y1, y2)``:

    R  = min(i1, i2)                 redundancy
    U1 = i1 - R,  U2 = i2 - R        unique information of each term
    S  = i12 - U1 - U2 - R           synergy

So ``U1 + R = i1``, ``U2 + R = i2`` and ``R + U1 + U2 + S = i12`` hold exactly, and one of U1, U2
is zero. ``U1, U2 >= 0`` always; ``R >= 0`` whenever ``i1, i2 >= 0`` (always true for the
orthogonal estimator, a squared norm); ``S`` has no sign constraint (negative synergy means the
two terms together tell the denoiser less than the sum of what they tell alone).

Works elementwise on floats, numpy arrays or torch tensors of one shape (per-pixel maps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class PID:
    """The four PID atoms plus the three inputs; each a float or an array of one shape."""

    redundancy: Any
    unique1: Any
    unique2: Any
    synergy: Any
    i1: Any
    i2: Any
    i12: Any

    def as_dict(self) -> dict[str, Any]:
        return dict(
            redundancy=self.redundancy, unique1=self.unique1, unique2=self.unique2,
            synergy=self.synergy, i1=self.i1, i2=self.i2, i12=self.i12,
        )


def _minimum(a: Any, b: Any) -> Any:
    if hasattr(a, "detach") or hasattr(b, "detach"):
        import torch

        return torch.minimum(torch.as_tensor(a), torch.as_tensor(b))
    out = np.minimum(a, b)
    return float(out) if np.ndim(out) == 0 else out


def pid_from_pmi(i1: Any, i2: Any, i12: Any) -> PID:
    """The PID atoms from pointwise MI of each term and of both (see module doc)."""
    r = _minimum(i1, i2)
    u1 = i1 - r
    u2 = i2 - r
    s = i12 - u1 - u2 - r
    return PID(redundancy=r, unique1=u1, unique2=u2, synergy=s, i1=i1, i2=i2, i12=i12)
