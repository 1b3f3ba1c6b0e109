"""ITI-GEN (Zhang et al., ICCV 2023): inclusive tokens per tSA category, the ``iti-gen`` method.

Modules by concern: ``training`` (learning the tokens), ``cli`` (``t2ibench itigen train`` /
``import``), ``released`` (the authors' released tokens). The names below are the package's API.
"""

from t2ibench.baselines.iti_gen.cli import add_commands
from t2ibench.baselines.iti_gen.released import import_released, reference_folders, reference_order
from t2ibench.baselines.iti_gen.training import (
    OBJECTIVES,
    SHIPPED_TINYWORLD,
    InclusivePrompts,
    InclusiveTokens,
    ItiGen,
    TrainResult,
    cosine_fallback_loss,
    encode_base,
    encode_inclusive,
    iti_gen_losses,
    prompt_features,
    resolve_tokens_dir,
    tokens_path,
    train_iti_gen,
)

__all__ = [
    "OBJECTIVES", "SHIPPED_TINYWORLD", "InclusivePrompts", "InclusiveTokens", "ItiGen", "TrainResult", "add_commands",
    "cosine_fallback_loss", "encode_base", "encode_inclusive", "import_released", "iti_gen_losses", "prompt_features",
    "reference_folders", "reference_order", "resolve_tokens_dir", "tokens_path", "train_iti_gen",
]
