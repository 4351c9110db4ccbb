# RGB-only baseline (TokenFusion paper's "w/o fusion" RGB row).
_base_ = ['./segformer_mit-b2-concat_4xb2-40k_nyu-rgbd-480x640.py']
modalities = ('rgb', )
model = dict(
    data_preprocessor=dict(modalities=modalities),
    backbone=dict(in_channels=3))
train_dataloader = dict(dataset=dict(modalities=modalities))
val_dataloader = dict(dataset=dict(modalities=modalities))
test_dataloader = val_dataloader
