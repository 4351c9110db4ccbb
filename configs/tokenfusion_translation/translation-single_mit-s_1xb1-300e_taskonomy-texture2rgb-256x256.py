# One source (Texture -> RGB), the first row of TokenFusion Table 7 (1 to 4
# sources -> RGB): the S generator with one stream and no fusion (its
# ensemble is its image), judged by the patch discriminator on (texture,
# RGB) pairs; training as the two-source task.
_base_ = [
    './tokenfusion-translation_mit-s_1xb1-300e_taskonomy-'
    'shade-texture2rgb-256x256.py'
]
sources = ('edge_texture', )
model = dict(
    generator=dict(num_modalities=1, fusion=None), stream_names=sources)
train_dataloader = dict(dataset=dict(sources=sources))
val_dataloader = dict(dataset=dict(sources=sources))
test_dataloader = val_dataloader
