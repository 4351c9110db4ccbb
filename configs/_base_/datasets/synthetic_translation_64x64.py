# The embedded synthetic translation set (projects/multimodal_translation/
# datasets/synthetic_translation.py): RGB = albedo (from the material map
# stored as edge_texture) x shading (reshading), so the target needs both
# sources; generated into data/synthetic_translation on first use, 200
# train / 40 test frames of 64x64, in Taskonomy's file layout.
dataset_type = 'SyntheticTranslationDataset'
data_root = 'data/synthetic_translation'
sources = ('reshading', 'edge_texture')
target = 'rgb'
# the reference's augmentation at 1/4 scale: resize 72, random 64 crop, flip
train_pipeline = [
    dict(type='LoadTranslationDomains'),
    dict(type='TranslationResize', scale=72),
    dict(type='TranslationRandomCrop', crop_size=64),
    dict(type='TranslationRandomFlip', prob=0.5),
    dict(type='PackTranslationInputs')
]
test_pipeline = [
    dict(type='LoadTranslationDomains'),
    dict(type='PackTranslationInputs')
]
dataset = dict(
    type=dataset_type, data_root=data_root, sources=sources, target=target)
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(dataset, ann_file='train.txt', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, ann_file='test.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='TranslationMetric')
test_evaluator = val_evaluator
