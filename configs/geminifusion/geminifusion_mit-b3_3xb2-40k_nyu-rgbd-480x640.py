# GeminiFusion MiT-B3 on NYUDv2-40 with the reference recipe (main branch,
# tag NYUDv2_V2): 3 GPUs x 2 images, 480x640 crops, 3 training stages of 100
# epochs (13.2k iterations each at 795 images / batch 6) with a fresh AdamW
# per stage at lr 6e-5 / 3e-5 / 1.5e-5, 1500-iteration warm-up from 1e-6 x,
# poly(1.0) towards 40k iterations; decoder lr x 10, no weight decay on
# encoder norms, wd 0.01; drop path 0.4. Reference result: 56.8 mIoU
# (released checkpoint, single scale, best-on-val ensemble).
# Deviations: the RGB colour jitter (p 0.2, multiplicative brightness /
# contrast / saturation in [0.5, 1.5]) is approximated with mmseg's
# PhotoMetricDistortion applied with p 0.2; the 3x3 Gaussian blur of RGB
# (p 0.2) is left out; depth keeps this repository's TokenFusion
# normalisation (std 5000) instead of the reference's /255.
_base_ = [
    '../_base_/models/geminifusion_mit-b3.py',
    '../_base_/datasets/nyu_rgbd_480x640.py', '../_base_/default_runtime.py',
    '../_base_/schedules/tokenfusion_staged.py'
]
custom_imports = dict(imports=['projects.multimodal_seg'])
crop_size = (480, 640)
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b3_20220624-13b1141c.pth'  # noqa
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='b3',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
# Reference augmentation: random rescale r ~ U(0.5, 2) of the short side
# w.r.t. the 480 crop (long side <= 4 x 640 x r), random 480x640 crop (padded
# by the data preprocessor with 0 / 255), random mirror.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile'),
    dict(type='LoadValidatedAnnotations'),
    dict(
        type='RandomResize',
        scale=(4 * 640, 480),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomApply',
        prob=0.2,
        transforms=[
            dict(
                type='PhotoMetricDistortionNoHue',
                brightness_delta=32,
                contrast_range=(0.5, 1.5),
                saturation_range=(0.5, 1.5))
        ]),
    dict(type='PackMultiModalSegInputs')
]
# Evaluation at 480x640, single scale, no flip.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile'),
    dict(type='LoadValidatedAnnotations'),
    dict(type='PackMultiModalSegInputs')
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys=dict(
            norm=dict(decay_mult=0.0), decode_head=dict(lr_mult=10.0))))
# GeminiFusion logs no statistics, hence no FusionStatsHook
custom_hooks = [dict(type='RestartOptimizerHook')]
