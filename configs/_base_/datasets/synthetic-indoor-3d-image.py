# Synthetic indoor scenes in SUN RGB-D format (generated into data_root on
# first use, 256x192 images): 'table' and 'desk' share one shape and size
# distribution and differ only by colour in the image; 'bed', 'chair' and
# 'bookshelf' differ in size. The pipelines are SUN RGB-D's.
_base_ = ['./sunrgbd-3d-image.py']
dataset_type = 'SyntheticIndoorDataset'
data_root = 'data/synthetic_indoor/'
class_names = ('bed', 'table', 'chair', 'desk', 'bookshelf')
metainfo = dict(classes=class_names)
num_points = 2048
img_scale = (256, 192)
generator = dict(num_train=200, num_val=50, seed=0, image_size=img_scale)

train_pipeline = [
    dict(step, scale=img_scale) if step['type'] == 'Resize' else
    dict(step, num_points=num_points) if step['type'] == 'PointSample' else
    step for step in _base_.train_pipeline
]
test_pipeline = [
    dict(step, scale=img_scale) if step['type'] == 'Resize' else
    dict(step, num_points=num_points) if step['type'] == 'PointSample' else
    step for step in _base_.test_pipeline
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=None,
        data_prefix=dict(pts='points', img='images'),
        metainfo=metainfo,
        pipeline=train_pipeline,
        **generator))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=None,
        data_prefix=dict(pts='points', img='images'),
        metainfo=metainfo,
        pipeline=test_pipeline,
        **generator))
test_dataloader = val_dataloader
