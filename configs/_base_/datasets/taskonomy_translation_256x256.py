# Taskonomy image translation as in the TokenFusion reference: one building
# (the public sample "model 1", data/taskonomy/<domain>/point_*_view_*_
# domain_*.png), the reference's split lists (one frame per line with a
# {domain} placeholder; 1,000 train / 500 val frames), 512x512 frames
# resized to 286, random 256 crop and flip in training, resized to 256 for
# evaluation, every domain in [-1, 1]. The sources and the target are set
# per task config.
dataset_type = 'TaskonomyDataset'
data_root = 'data/taskonomy'
train_pipeline = [
    dict(type='LoadTranslationDomains'),
    dict(type='TranslationResize', scale=286),
    dict(type='TranslationRandomCrop', crop_size=256),
    dict(type='TranslationRandomFlip', prob=0.5),
    dict(type='PackTranslationInputs')
]
test_pipeline = [
    dict(type='LoadTranslationDomains'),
    dict(type='TranslationResize', scale=256),
    dict(type='PackTranslationInputs')
]
dataset = dict(type=dataset_type, data_root=data_root)
train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        dataset, ann_file='train_domain.txt', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, ann_file='val_domain.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader
# FID / KID (x100) on 2048-d Inception-v3 pool features with the FID
# weights, read from a local file (pt_inception-2015-12-05-6726825d.pth of
# pytorch-fid; nothing is downloaded); MAE / MSE / RMSE / PSNR / SSIM too.
fid_inception_weights = 'checkpoints/pt_inception-2015-12-05-6726825d.pth'
val_evaluator = [
    dict(type='TranslationMetric'),
    dict(
        type='FIDKIDMetric',
        network=dict(type='FIDInceptionV3', weights=fid_inception_weights))
]
test_evaluator = val_evaluator
