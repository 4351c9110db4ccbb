# TokenFusion-S, Taskonomy RGB + Edge -> Depth (TokenFusion Table 1), scored
# by MAE / MSE as RGB + Shade -> Normal. 'Edge' is read as Taskonomy's
# occlusion edges (edge_occlusion): the paper's 'Texture' already names
# the texture edges (edge_texture).
_base_ = [
    './tokenfusion-translation_mit-s_1xb1-300e_taskonomy-'
    'rgb-shade2normal-256x256.py'
]
sources = ('rgb', 'edge_occlusion')
target = 'depth_euclidean'
model = dict(stream_names=sources)
train_dataloader = dict(dataset=dict(sources=sources, target=target))
val_dataloader = dict(dataset=dict(sources=sources, target=target))
test_dataloader = val_dataloader
