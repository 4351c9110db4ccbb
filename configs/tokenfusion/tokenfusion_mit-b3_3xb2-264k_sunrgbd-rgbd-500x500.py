# TokenFusion MiT-B3 on SUN RGB-D-37 with the NYUDv2 reference recipe
# (TokenFusion released no SUN RGB-D recipe): 3 x 100 epochs of 5285 images
# at batch 6 = 3 x 88000 iterations. Paper: about 51.0 mIoU (unverified).
_base_ = ['./tokenfusion_mit-b3_3xb2-40k_nyu-rgbd-500x500.py']
dataset_type = 'SUNRGBDSegDataset'
data_root = 'data/sunrgbd'
stage_iters = 88000  # 5285 // 6 = 880 iterations per epoch
model = dict(decode_head=dict(num_classes=37))
# The NYUDv2 augmentation around SUN RGB-D's usual 730x530 frames (images
# of other sensors are rescaled by the same ratios).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile'),
    dict(type='LoadValidatedAnnotations'),
    dict(
        type='RandomResize',
        scale=(730, 530),
        ratio_range=(0.66, 2.0),
        keep_ratio=True,
        interpolation='bicubic'),
    dict(type='RandomCrop', crop_size=(500, 500)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackMultiModalSegInputs')
]
train_dataloader = dict(
    dataset=dict(
        type=dataset_type, data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
# poly decay over the whole run's length, as the NYUDv2 recipe (40000 ~ 3 x
# 13200)
param_scheduler = [
    dict(
        type='StagedPolyLR',
        stage_iters=stage_iters,
        poly_iters=3 * stage_iters)
]
train_cfg = dict(max_iters=3 * stage_iters, val_interval=stage_iters // 20)
default_hooks = dict(checkpoint=dict(interval=stage_iters // 20))
