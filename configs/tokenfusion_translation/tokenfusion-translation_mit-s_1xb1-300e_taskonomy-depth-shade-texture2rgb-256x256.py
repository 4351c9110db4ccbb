# Three sources (Depth + Shade + Texture -> RGB), TokenFusion Table 7: the
# two-source task plus depth. With M > 2 sources a token below θ takes the
# token of one other source, chosen per position by the group allocation
# (a random pattern tiling the token grid whose positions are split evenly
# among the M - 1 others), as in segmentation.
_base_ = [
    './tokenfusion-translation_mit-s_1xb1-300e_taskonomy-'
    'shade-texture2rgb-256x256.py'
]
sources = ('depth_euclidean', 'reshading', 'edge_texture')
model = dict(generator=dict(num_modalities=3), stream_names=sources)
train_dataloader = dict(dataset=dict(sources=sources))
val_dataloader = dict(dataset=dict(sources=sources))
test_dataloader = val_dataloader
