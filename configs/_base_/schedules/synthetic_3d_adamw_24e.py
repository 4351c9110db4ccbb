# The reference recipe's optimiser and parameter groups on the demo budget:
# 24 epochs of the 200 synthetic scenes, lr x0.1 at epochs 18 and 22.
_base_ = ['./groupfree3d_adamw_600e.py']
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=24,
        by_epoch=True,
        milestones=[18, 22],
        gamma=0.1)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=24, val_interval=24)
# The demo's table is reproducible run to run.
randomness = dict(seed=0)
