# GeminiFusion on the synthetic RGB-D set: the TokenFusion demo config (same
# small MiT, data, schedule and budget) with a GeminiFusion module (8 heads)
# in every block instead of token scoring and exchange.
_base_ = [
    '../tokenfusion/tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py'
]
model = dict(
    sparsity_weight=0.0,
    backbone=dict(fusion='geminifusion', fusion_heads=8))
custom_hooks = []  # no token scores to log
