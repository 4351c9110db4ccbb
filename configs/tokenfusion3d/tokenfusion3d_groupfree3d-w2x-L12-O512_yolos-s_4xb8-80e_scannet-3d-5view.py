# As the 10-view config, with 5 posed frames per scene (paper Table 10).
_base_ = [
    './tokenfusion3d_groupfree3d-w2x-L12-O512_yolos-s_4xb8-80e_scannet-3d-'
    '10view.py'
]
num_views = 5
train_pipeline = [
    dict(step, num_views=num_views)
    if step['type'] == 'LoadMultiViewPosedImages' else step
    for step in _base_.train_pipeline
]
test_pipeline = [
    dict(step, num_views=num_views)
    if step['type'] == 'LoadMultiViewPosedImages' else step
    for step in _base_.test_pipeline
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
