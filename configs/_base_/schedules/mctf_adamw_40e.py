# MCTF's fine-tuning from a trained DeiT: AdamW (weight decay 0.05, none on
# norms, biases, the class token and the position embedding), lr 3e-5 for
# a global batch of 1024 (5e-4 x 0.03, scaled by 1024 / 512) falling to
# 1e-6 by cosine over 30 epochs, then 10 cool-down epochs at 1e-6 without
# warm-up; gradients clipped at 5 as DeiT; EMA of the weights (decay
# 0.99996).
_base_ = ['./vit_adamw.py']
optim_wrapper = dict(optimizer=dict(lr=3e-5))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=30,
        eta_min=1e-6,
        by_epoch=True,
        begin=0,
        end=30,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=40, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)
custom_hooks = [dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL')]
