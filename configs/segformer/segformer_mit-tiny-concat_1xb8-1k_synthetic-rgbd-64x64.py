# Early-concat RGB-D baseline (the paper's "Concat" row) on the synthetic
# set: RGB and tiled depth stacked into a 6-channel input of one small MiT.
_base_ = [
    '../_base_/models/segformer_mit-b0_multimodal.py',
    '../_base_/datasets/synthetic_rgbd_64x64.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/synthetic_adamw_1k.py'
]
modalities = ('rgb', 'depth')
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(modalities=modalities, size=(64, 64)),
    backbone=dict(
        in_channels=6,
        embed_dims=16,
        num_layers=[1, 1, 1, 1],
        num_heads=[1, 2, 4, 8],
        drop_path_rate=0.0),
    decode_head=dict(
        in_channels=[16, 32, 64, 128],
        channels=64,
        num_classes=5,
        norm_cfg=norm_cfg))
train_dataloader = dict(dataset=dict(modalities=modalities))
val_dataloader = dict(dataset=dict(modalities=modalities))
test_dataloader = val_dataloader
env_cfg = dict(cudnn_benchmark=False)
