# Early concatenation: one stream whose first layer sees both sources
# (6 channels), judged against both (6 + 3 channels): TokenFusion's
# "Concat" baseline.
_base_ = [
    './tokenfusion-translation_mit-tiny_1xb4-1k_synthetic-shade-texture2rgb-'
    '64x64.py'
]
model = dict(
    generator=dict(num_modalities=1, in_channels=6, fusion=None),
    discriminator=dict(in_channels=9),
    stream_names=('concat', ))
