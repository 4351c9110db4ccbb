# Points-only baseline: GroupFree3D L6-O256 on SUN RGB-D with the recipe of
# the TokenFusion fusion config, without the image.
_base_ = [
    '../_base_/models/groupfree3d_sunrgbd.py',
    '../_base_/datasets/sunrgbd-3d-image.py',
    '../_base_/schedules/groupfree3d_adamw_600e.py',
    '../_base_/det3d_runtime.py'
]
train_pipeline = [
    step for step in _base_.train_pipeline
    if step['type'] not in ('LoadImageFromFile', 'Resize')
]
train_pipeline[-1] = dict(
    type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d'])
test_pipeline = [
    step for step in _base_.test_pipeline
    if step['type'] not in ('LoadImageFromFile', 'Resize')
]
test_pipeline[-1] = dict(type='Pack3DDetInputs', keys=['points'])
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
