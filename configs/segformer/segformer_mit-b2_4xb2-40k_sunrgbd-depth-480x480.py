# Depth-only baseline (TokenFusion paper's "w/o fusion" depth row): raw depth
# x 1/5000 tiled to 3 channels through the ImageNet-initialised MiT-B2.
_base_ = ['./segformer_mit-b2-concat_4xb2-40k_sunrgbd-rgbd-480x480.py']
modalities = ('depth', )
model = dict(
    data_preprocessor=dict(modalities=modalities),
    backbone=dict(in_channels=3))
train_dataloader = dict(dataset=dict(modalities=modalities))
val_dataloader = dict(dataset=dict(modalities=modalities))
test_dataloader = val_dataloader
