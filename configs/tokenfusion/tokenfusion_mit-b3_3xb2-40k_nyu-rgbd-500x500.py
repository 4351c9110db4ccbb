# TokenFusion MiT-B3 on NYUDv2-40 with the reference recipe (3 GPUs x 2
# images, 500x500 crops, 3 x 100 epochs = 39.6k iterations, λ = 1e-6 with
# the summed sparsity loss). Reference result: 54.2 mIoU (paper), 54.8 (the
# released single-scale checkpoint).
_base_ = [
    '../_base_/models/tokenfusion_mit-b2.py',
    '../_base_/datasets/nyu_rgbd_480x640.py', '../_base_/default_runtime.py',
    '../_base_/schedules/tokenfusion_staged.py'
]
custom_imports = dict(imports=['projects.multimodal_seg'])
crop_size = (500, 500)
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b3_20220624-13b1141c.pth'  # noqa
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='b3', init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
# Reference augmentation: scale U(0.5, 2) raised so that the short side is
# >= 350 (for 480-px NYU frames: >= 0.729), bicubic RGB / nearest depth and
# label, random mirror, random 500 crop; no photometric distortion. Padding
# to 500 is done after the crop by the data preprocessor (the reference pads
# symmetrically before it).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile'),
    dict(type='LoadValidatedAnnotations'),
    dict(
        type='RandomResize',
        scale=(640, 480),
        ratio_range=(0.729, 2.0),
        keep_ratio=True,
        interpolation='bicubic'),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackMultiModalSegInputs')
]
# Evaluation at full 640x480, single scale, no flip.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile'),
    dict(type='LoadValidatedAnnotations'),
    dict(type='PackMultiModalSegInputs')
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
