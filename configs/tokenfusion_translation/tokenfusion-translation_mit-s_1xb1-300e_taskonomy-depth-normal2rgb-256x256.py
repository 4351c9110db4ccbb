# TokenFusion-S, Taskonomy Depth + Normal -> RGB (TokenFusion Table 1): the
# shade + texture task's networks and recipe on other sources.
_base_ = [
    './tokenfusion-translation_mit-s_1xb1-300e_taskonomy-'
    'shade-texture2rgb-256x256.py'
]
sources = ('depth_euclidean', 'normal')
target = 'rgb'
model = dict(stream_names=sources)
train_dataloader = dict(dataset=dict(sources=sources, target=target))
val_dataloader = dict(dataset=dict(sources=sources, target=target))
test_dataloader = val_dataloader
