# The reference's recipe: Adam lr 2e-4, betas (0.5, 0.999) for both
# networks, constant lr, batch 1, 300 epochs (main.py's default; its
# released file is named after epoch 399), evaluation every 5 epochs.
adam = dict(type='Adam', lr=2e-4, betas=(0.5, 0.999))
optim_wrapper = dict(
    constructor='PerSubmoduleOptimWrapperConstructor',
    generator=dict(type='OptimWrapper', optimizer=adam),
    discriminator=dict(type='OptimWrapper', optimizer=adam))
param_scheduler = []
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=300, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=100),
    logger=dict(type='LoggerHook', interval=100))
