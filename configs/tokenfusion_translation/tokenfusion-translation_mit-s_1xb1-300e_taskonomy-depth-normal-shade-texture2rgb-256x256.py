# Four sources (Depth + Normal + Shade + Texture -> RGB), TokenFusion
# Table 7: the three-source task plus surface normals, token exchange with
# the group allocation among the 4 sources.
_base_ = [
    './tokenfusion-translation_mit-s_1xb1-300e_taskonomy-'
    'shade-texture2rgb-256x256.py'
]
sources = ('depth_euclidean', 'normal', 'reshading', 'edge_texture')
model = dict(generator=dict(num_modalities=4), stream_names=sources)
train_dataloader = dict(dataset=dict(sources=sources))
val_dataloader = dict(dataset=dict(sources=sources))
test_dataloader = val_dataloader
