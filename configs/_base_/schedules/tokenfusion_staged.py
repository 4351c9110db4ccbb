# The TokenFusion reference recipe (semantic_segmentation/main.py): AdamW
# lr 6e-5, decoder (and ensemble weights) lr x10, no weight decay on norms;
# 3 stages of 100 epochs with lr 6e-5 / 3e-5 / 1.5e-5, each with a
# 1500-iteration warm-up, poly decay over 40000 iterations and a fresh
# optimizer. `stage_iters` = 100 epochs of the dataset at batch 6.
stage_iters = 13200  # NYUDv2: 795 // 6 = 132 iterations per epoch
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=6e-5, betas=(0.9, 0.999), eps=1e-8,
        weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys=dict(
            norm=dict(decay_mult=0.0),
            decode_head=dict(lr_mult=10.0),
            alpha=dict(lr_mult=10.0))))
param_scheduler = [
    dict(
        type='StagedPolyLR',
        stage_iters=stage_iters,
        stage_factors=(1.0, 0.5, 0.25),
        warmup_iters=1500,
        warmup_ratio=1e-6,
        poly_iters=40000)
]
custom_hooks = [
    dict(type='RestartOptimizerHook'),
    dict(type='FusionStatsHook', interval=50)
]
train_cfg = dict(
    type='IterBasedTrainLoop',
    max_iters=3 * stage_iters,
    val_interval=5 * stage_iters // 100)  # every 5 epochs, as the reference
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=5 * stage_iters // 100,
        max_keep_ckpts=2,
        save_best='mIoU'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
