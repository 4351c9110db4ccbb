# One source only (edge_texture): the single-modal generator of the demo.
_base_ = [
    './tokenfusion-translation_mit-tiny_1xb4-1k_synthetic-shade-texture2rgb-'
    '64x64.py'
]
sources = ('edge_texture', )
model = dict(
    generator=dict(num_modalities=1, fusion=None), stream_names=sources)
train_dataloader = dict(dataset=dict(sources=sources))
val_dataloader = dict(dataset=dict(sources=sources))
test_dataloader = val_dataloader
