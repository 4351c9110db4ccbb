# The embedded synthetic shapes set (projects/mctf/datasets/
# synthetic_shapes.py): 6 classes, 3000 training / 600 test images of
# 32 x 32, generated into data/synthetic_shapes on first use and read as
# class folders by mmpretrain's CustomDataset.
dataset_type = 'SyntheticShapesDataset'
data_root = 'data/synthetic_shapes'
data_preprocessor = dict(
    num_classes=6,
    mean=[127.5, 127.5, 127.5],
    std=[73.6, 73.6, 73.6],  # of a uniform 0-255
    to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(type='PackInputs')
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,  # 64 small PNGs a batch: workers would cost more
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=100,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        test_mode=True,
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
