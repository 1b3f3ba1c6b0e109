"""ITI-GEN (Zhang et al., ICCV 2023): inclusive tokens per tSA category, and the ``iti-gen`` method.

Modules by concern: ``tokens`` (the token file format), ``training`` (learning the tokens),
``encoding`` (prompt embeddings with the tokens), ``method`` (``ItiGen``), ``released`` (the
authors' released tokens), ``cli`` (``t2ibench itigen train`` / ``import``). The names below are
the package's API.
"""

from t2ibench.baselines.iti_gen.cli import add_commands
from t2ibench.baselines.iti_gen.encoding import CategoryPrompt, InclusivePrompts, category_prompt, encode_base, encode_inclusive
from t2ibench.baselines.iti_gen.method import ItiGen
from t2ibench.baselines.iti_gen.released import import_released, reference_folders, reference_order
from t2ibench.baselines.iti_gen.tokens import SHIPPED_TINYWORLD, InclusiveTokens, resolve_tokens_dir, tokens_path
from t2ibench.baselines.iti_gen.training import (
    OBJECTIVES,
    TrainResult,
    cosine_fallback_loss,
    iti_gen_losses,
    prompt_features,
    train_iti_gen,
)

__all__ = [
    "OBJECTIVES", "SHIPPED_TINYWORLD", "CategoryPrompt", "InclusivePrompts", "InclusiveTokens", "ItiGen", "TrainResult",
    "add_commands", "category_prompt", "cosine_fallback_loss", "encode_base", "encode_inclusive", "import_released",
    "iti_gen_losses", "prompt_features", "reference_folders", "reference_order", "resolve_tokens_dir", "tokens_path",
    "train_iti_gen",
]
