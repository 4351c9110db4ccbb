# The budget shared by every model of `make demo` on the synthetic set:
# the SegFormer AdamW recipe at lr 1e-3, 50-iteration warm-up, poly decay to
# 1000 iterations, one evaluation and one checkpoint at the end, seeded.
_base_ = ['./segformer_adamw_40k.py']
max_iters = 1000
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=50,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(interval=max_iters, save_best=None))
randomness = dict(seed=0)
