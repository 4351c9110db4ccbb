# TokenFusion-S, Taskonomy RGB + Normal -> Shade (TokenFusion Table 1),
# scored by MAE / MSE as RGB + Shade -> Normal.
_base_ = [
    './tokenfusion-translation_mit-s_1xb1-300e_taskonomy-'
    'rgb-shade2normal-256x256.py'
]
sources = ('rgb', 'normal')
target = 'reshading'
model = dict(stream_names=sources)
train_dataloader = dict(dataset=dict(sources=sources, target=target))
val_dataloader = dict(dataset=dict(sources=sources, target=target))
test_dataloader = val_dataloader
