# The TokenFusion demo generator without fusion: the two streams share
# their weights and meet only in the learned ensemble of their images.
_base_ = [
    './tokenfusion-translation_mit-tiny_1xb4-1k_synthetic-shade-texture2rgb-'
    '64x64.py'
]
model = dict(generator=dict(fusion=None))
