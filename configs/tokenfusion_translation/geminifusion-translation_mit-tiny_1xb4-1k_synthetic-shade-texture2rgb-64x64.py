# GeminiFusion in the translation generator (the fusion layer switched in
# the same fused MiT): pixel-wise cross-modal attention with the learned
# relation and noise in every encoder block, 8 heads, instead of token
# exchange.
_base_ = [
    './tokenfusion-translation_mit-tiny_1xb4-1k_synthetic-shade-texture2rgb-'
    '64x64.py'
]
model = dict(
    generator=dict(fusion=dict(_delete_=True, type='GeminiFusion', heads=8)))
