# Early-concat baseline on the synthetic RGB / depth / event / LiDAR set:
# the four modalities stacked into a 12-channel input of one small MiT (the
# RGB-D concat baseline's model, data of synthetic_rgbdel_64x64.py, the
# 4-modality demo's 3000 iterations).
_base_ = [
    '../_base_/models/segformer_mit-b0_multimodal.py',
    '../_base_/datasets/synthetic_rgbdel_64x64.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/synthetic_adamw_3k.py'
]
modalities = ('rgb', 'depth', 'event', 'lidar')
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(modalities=modalities, size=(64, 64)),
    backbone=dict(
        in_channels=12,
        embed_dims=16,
        num_layers=[1, 1, 1, 1],
        num_heads=[1, 2, 4, 8],
        drop_path_rate=0.0),
    decode_head=dict(
        in_channels=[16, 32, 64, 128],
        channels=64,
        num_classes=6,
        norm_cfg=norm_cfg))
env_cfg = dict(cudnn_benchmark=False)
