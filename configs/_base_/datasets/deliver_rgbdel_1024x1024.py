# DeLiVER RGB-Depth-Event-LiDAR (official DELIVER tree under
# data/DELIVER: img/ hha/ event/ lidar/ semantic/), 25 classes, ignore 255;
# the recipe of the CMNeXt / GeminiFusion DeLiVER code: train on `train`,
# evaluate on `val`. Depth is the HHA image of `hha/`; events are resized to
# the RGB size with nearest. For fewer modalities set `modalities` (RGB
# first) in the dataloaders and the data preprocessor: the loaders of the
# modalities the dataset does not list do nothing.
# Deviations from the reference augmentation: the RGB colour jitter (p 0.2,
# brightness / contrast / saturation x U[0.5, 1.5]) is approximated by
# mmseg's PhotoMetricDistortion without its hue step, applied with p 0.2;
# the 3x3 Gaussian blur of RGB (p 0.2) is left out; mmseg resizes the
# extra modalities with nearest (the reference: bilinear); evaluation
# scores the logits resized to the original label size (the reference
# resizes the labels to the input size,
# 1042 -> 1024 px).
dataset_type = 'DeLiVERDataset'
data_root = 'data/DELIVER'
modalities = ('rgb', 'depth', 'event', 'lidar')
crop_size = (1024, 1024)
load_modalities = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadModalityImageFromFile', modality='depth'),
    dict(
        type='LoadModalityImageFromFile', modality='event',
        resize_to_img=True),
    dict(type='LoadModalityImageFromFile', modality='lidar'),
]
# Reference: random rescale r ~ U(0.5, 2) so that the short side is about
# 1024 r (long side <= 4096 r), random 1024 crop, padded with 0 (images)
# and 255 (labels) before normalisation, random mirror.
# The colour jitter comes first, as in the reference, so that it does not
# touch the padding.
train_pipeline = load_modalities + [
    dict(type='LoadValidatedAnnotations'),
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
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomResize',
        scale=(4 * 1024, 1024),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='MultiModalPad', size=crop_size),
    dict(type='PackMultiModalSegInputs')
]
# Reference evaluation: shorter side to 1024, then each side up to a
# multiple of 32 (bilinear for the images), whole image, single scale.
test_pipeline = load_modalities + [
    dict(type='ResizeShortestEdge', scale=1024, max_size=4 * 1024),
    dict(type='ResizeToMultiple', size_divisor=32),
    dict(type='LoadValidatedAnnotations'),
    dict(type='PackMultiModalSegInputs')
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = load_modalities + [
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale_factor=r, keep_ratio=True)
                for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ], [dict(type='LoadValidatedAnnotations')],
            [dict(type='PackMultiModalSegInputs')]
        ])
]
train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        modalities=modalities,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        modalities=modalities,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
