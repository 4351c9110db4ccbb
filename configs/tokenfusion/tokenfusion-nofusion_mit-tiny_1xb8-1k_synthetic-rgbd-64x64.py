# The fusion-free reference point of the demo: the TokenFusion demo model
# (one small MiT with shared weights and per-modality LayerNorms for RGB and
# depth, the shared head on both streams, the learned ensemble of their
# logits) without score predictors or token exchange, so the modalities meet
# only in the ensemble.
_base_ = ['./tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py']
model = dict(backbone=dict(fusion=None))
custom_hooks = []  # no fusion layer, nothing to log
