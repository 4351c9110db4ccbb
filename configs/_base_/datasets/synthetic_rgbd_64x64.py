# The embedded synthetic RGB-D set (projects/multimodal_seg/datasets/
# synthetic_rgbd.py): generated into data/synthetic_rgbd on first use.
dataset_type = 'SyntheticRGBDDataset'
data_root = 'data/synthetic_rgbd'
modalities = ('rgb', 'depth')
crop_size = (64, 64)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile'),
    dict(type='LoadValidatedAnnotations'),
    dict(
        type='RandomResize',
        scale=(64, 64),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackMultiModalSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile'),
    dict(type='LoadValidatedAnnotations'),
    dict(type='PackMultiModalSegInputs')
]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale_factor=r, keep_ratio=True)
                for r in (0.75, 1.0, 1.25)
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ], [dict(type='LoadValidatedAnnotations')],
            [dict(type='PackMultiModalSegInputs')]
        ])
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train.txt',
        modalities=modalities,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='test.txt',
        modalities=modalities,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
