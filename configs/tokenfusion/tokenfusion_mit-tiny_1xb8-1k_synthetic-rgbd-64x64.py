# TokenFusion on the synthetic RGB-D set (`make demo`): the same small MiT,
# data, schedule and budget as the SegFormer baselines in
# configs/segformer/*synthetic*, with both modalities through one shared MiT.
_base_ = [
    '../_base_/models/tokenfusion_mit-b2.py',
    '../_base_/datasets/synthetic_rgbd_64x64.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/synthetic_adamw_1k.py'
]
custom_imports = dict(imports=['projects.multimodal_seg'])
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(
        embed_dims=16,
        num_layers=[1, 1, 1, 1],
        num_heads=[1, 2, 4, 8],
        drop_path_rate=0.0,
        fusion=dict(sparsity_weight=0.01, sparsity_reduction='mean')),
    decode_head=dict(
        in_channels=[16, 32, 64, 128],
        channels=64,
        num_classes=5,
        norm_cfg=norm_cfg,
        freeze_bn=False))

optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(alpha=dict(lr_mult=10.0))))
# exchanged-token fractions and score statistics per stage and modality
custom_hooks = [dict(type='FusionStatsHook', interval=100)]
env_cfg = dict(cudnn_benchmark=False)
