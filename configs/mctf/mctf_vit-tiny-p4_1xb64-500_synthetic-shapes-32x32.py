# MCTF on the demo ViT (vit-tiny-p4_1xb64-2k_synthetic-shapes-32x32.py):
# multi-criteria token fusion in layers 1-5, r = 6 tokens per layer
# (65 -> 35 tokens), one-step-ahead attention, bidirectional matching,
# τ = (1, 20, 40), attention x size pooling, proportional attention (the
# backbone's defaults: the DeiT recipe's merging). Training fine-tunes the
# plain ViT's checkpoint for 500 iterations with the token-reduction
# consistency (teacher r drawn from 0..5, λ = 1, β = 0.4); testing this
# config on the plain ViT's checkpoint is MCTF off the shelf (no new
# parameter).
_base_ = ['./vit-tiny-p4_1xb64-2k_synthetic-shapes-32x32.py']
max_iters = 500
model = dict(
    type='TokenReductionConsistencyClassifier',
    backbone=dict(
        type='MCTFVisionTransformer', r=6, merge_layers=[1, 2, 3, 4, 5]),
    r_teacher_max=6,
    consistency_weight=1.,
    confidence=0.4)
# fine-tuning: lr 2e-4 falling to 1e-5 by cosine, no warm-up
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=False,
        begin=0,
        end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
# the plain ViT as `make demo TASK=mctf` trains it
load_from = 'work_dirs/demo_mctf/vit/iter_2000.pth'
