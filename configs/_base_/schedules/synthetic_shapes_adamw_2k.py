# Training a small ViT from scratch on the synthetic shapes set: AdamW
# (lr 2e-3, weight decay 0.05, none on norms, biases, the class token and
# the position embedding), 100-iteration linear warm-up, cosine to 1e-5 at
# 2000 iterations of batch 64 (about 43 epochs), one evaluation at the
# end.
_base_ = ['./vit_adamw.py']
max_iters = 2000
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=False,
        begin=100,
        end=max_iters)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict()
test_cfg = dict()
