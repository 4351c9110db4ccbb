# Points-only baseline of the 3D demo (make demo-3d).
_base_ = [
    '../_base_/models/groupfree3d_tiny_synthetic.py',
    '../_base_/datasets/synthetic-indoor-3d-image.py',
    '../_base_/schedules/synthetic_3d_adamw_24e.py',
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
default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval=24, max_keep_ckpts=1))
