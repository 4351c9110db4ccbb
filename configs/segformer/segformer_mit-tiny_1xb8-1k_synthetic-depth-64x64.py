# Depth-only baseline (the paper's "w/o fusion" depth row; depth tiled to
# 3 channels) on the synthetic set.
_base_ = ['./segformer_mit-tiny-concat_1xb8-1k_synthetic-rgbd-64x64.py']
modalities = ('depth', )
model = dict(
    data_preprocessor=dict(modalities=modalities),
    backbone=dict(in_channels=3))
train_dataloader = dict(dataset=dict(modalities=modalities))
val_dataloader = dict(dataset=dict(modalities=modalities))
test_dataloader = val_dataloader
