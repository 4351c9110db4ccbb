# The embedded synthetic RGB / depth / event / LiDAR set (projects/
# multimodal_seg/datasets/synthetic_multimodal.py; every modality is needed
# for full accuracy): generated into data/synthetic_rgbdel on first use.
# The RGB-D synthetic set's augmentation, loaders and evaluation, with the
# event and LiDAR maps loaded after the RGB-D pair; event frames are stored
# at half resolution and resized to the RGB size with nearest, as DeLiVER's.
_base_ = ['./synthetic_rgbd_64x64.py']
dataset_type = 'SyntheticMultiModalDataset'
data_root = 'data/synthetic_rgbdel'
modalities = ('rgb', 'depth', 'event', 'lidar')
extra_loaders = [
    dict(
        type='LoadModalityImageFromFile', modality='event',
        resize_to_img=True),
    dict(type='LoadModalityImageFromFile', modality='lidar'),
]
# the RGB-D pipelines start with the RGB and depth loaders
train_pipeline = _base_.train_pipeline[:2] + extra_loaders + \
    _base_.train_pipeline[2:]
test_pipeline = _base_.test_pipeline[:2] + extra_loaders + \
    _base_.test_pipeline[2:]
tta_pipeline = _base_.tta_pipeline[:2] + extra_loaders + \
    _base_.tta_pipeline[2:]
rgbdel_dataset = dict(
    type=dataset_type, data_root=data_root, modalities=modalities)
train_dataloader = dict(dataset=dict(rgbdel_dataset, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(rgbdel_dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
