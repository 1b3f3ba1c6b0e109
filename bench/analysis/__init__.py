"""Analysis tools with pictures: cross-attention maps, prompt switching, DiffusionPID.

Modules (import what you need; nothing heavy is imported here):

- ``stats``: amplitude statistics and spatial central moments of 2-D maps
  (``map_statistics``, ``token_statistics``, ``box_mass_share``, ``box_area_share``).
- ``pid_math``: PID of two terms from pointwise MI (``pid_from_pmi``: R = min(i1, i2), U1, U2, S).
- ``pid``: the DiffusionPID estimator (``pointwise_mi``, ``estimate_pid``, ``pid_over_seeds``,
  ``bias_probe``, ``summarise``; orthogonal / mmse estimators; log-SNR importance sampling).
- ``tokens``: words, token positions, prompts with words removed or masked.
- ``maps``: per-token cross-attention maps of a generation (``capture_maps``) or of a given image
  (``capture_maps_on_image``), on ``t2ibench.attention.CrossAttentionMaps``; ``box_shares``.
- ``switch``: I2H / H2I prompt switching with per-token statistics (``switch_experiment``,
  ``write_switch_outputs``, ``PromptSource``).
- ``world_checks``: ground-truth checks on tinyworld renders (``object_word_box_shares``).
- ``figures``: matplotlib (Agg canvas) figures.
- ``cli``: ``t2ibench analyze maps | switch | pid``.
"""
