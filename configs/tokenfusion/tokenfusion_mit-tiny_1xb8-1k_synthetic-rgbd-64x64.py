# TokenFusion on the synthetic RGB-D set (`make demo`): the same small MiT,
# data, schedule and budget as the SegFormer baselines in
# configs/segformer/*synthetic*, with both modalities through one shared MiT.
_base_ = [
    '../_base_/models/tokenfusion_mit-b2.py',
    '../_base_/datasets/synthetic_rgbd_64x64.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/segformer_adamw_40k.py'
]
custom_imports = dict(imports=['projects.tokenfusion'])
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(64, 64)),
    sparsity_reduction='mean',
    sparsity_weight=0.01,
    backbone=dict(
        embed_dims=16,
        num_layers=[1, 1, 1, 1],
        num_heads=[1, 2, 4, 8],
        drop_path_rate=0.0),
    decode_head=dict(
        in_channels=[16, 32, 64, 128],
        channels=64,
        num_classes=5,
        norm_cfg=norm_cfg,
        freeze_bn=False))

max_iters = 1000
optim_wrapper = dict(
    optimizer=dict(lr=1e-3),
    paramwise_cfg=dict(custom_keys=dict(alpha=dict(lr_mult=10.0))))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=50,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# exchanged-token fractions and score statistics per stage and modality
custom_hooks = [dict(type='TokenFusionStatsHook', interval=100)]
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(interval=max_iters, save_best=None))
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
