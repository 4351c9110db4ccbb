# TokenFusion on the synthetic RGB / depth / event / LiDAR set: the model
# and optimizer of tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py (its
# model overrides are repeated here: mmengine forbids two bases that both
# define the data keys) with four modalities through one shared MiT, over
# 3000 iterations (the 4-modality demo budget).
# With M > 2 a pruned token of a modality is replaced by the token of one
# other modality at the same position, chosen by the paper's group
# allocation (a fixed random pattern per stage splitting the positions into
# M - 1 equal groups, one per other modality; TokenExchange's default
# 32 x 32 pattern, cropped to the token grid).
_base_ = [
    '../_base_/models/tokenfusion_mit-b2.py',
    '../_base_/datasets/synthetic_rgbdel_64x64.py',
    '../_base_/default_runtime.py', '../_base_/schedules/synthetic_adamw_3k.py'
]
custom_imports = dict(imports=['projects.multimodal_seg'])
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(
        modalities=('rgb', 'depth', 'event', 'lidar'), size=(64, 64)),
    backbone=dict(
        num_modalities=4,
        embed_dims=16,
        num_layers=[1, 1, 1, 1],
        num_heads=[1, 2, 4, 8],
        drop_path_rate=0.0,
        fusion=dict(sparsity_weight=0.01, sparsity_reduction='mean')),
    decode_head=dict(
        in_channels=[16, 32, 64, 128],
        channels=64,
        num_classes=6,
        norm_cfg=norm_cfg,
        freeze_bn=False))

optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(alpha=dict(lr_mult=10.0))))
# exchanged-token fractions and score statistics per stage and modality
custom_hooks = [dict(type='FusionStatsHook', interval=100)]
env_cfg = dict(cudnn_benchmark=False)
