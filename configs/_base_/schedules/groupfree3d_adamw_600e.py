# The TokenFusion 3D reference recipe (600 epochs, batch 4 x 8): AdamW with
# lr 0.004 / weight decay 1e-8 by default, lr 2e-4 for the point decoder
# (every name with 'decoder'), lr 5e-5 / weight decay 1e-4 for the image
# branch (every name with 'img': ViT, 2D head and the h_i projections);
# gradients clipped at 0.1; lr x0.1 at epochs 420, 480 and 540.
lr = 0.004
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=1e-8),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'decoder': dict(lr_mult=2e-4 / lr),
            'img': dict(lr_mult=5e-5 / lr, decay_mult=1e-4 / 1e-8),
        }))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=600,
        by_epoch=True,
        milestones=[420, 480, 540],
        gamma=0.1)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=600, val_interval=25)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=32)
