"""t2ibench: an evaluation benchmark suite for attention-level control of text-to-image diffusion."""

__version__ = "0.1.0"
