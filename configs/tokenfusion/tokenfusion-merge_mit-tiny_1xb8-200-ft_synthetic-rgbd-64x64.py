# Token merging in the TokenFusion demo model, fine-tuned: the trained
# `make demo` checkpoint (load_from) with half of the tokens of every block
# of stages 2-4 merged (one merge map for both streams; the exchange uses
# each merged token's mean score; Mix-FFN linear layers included) and 200
# iterations of the merge-consistency objective (a teacher without merging,
# λ 3, β 0.4) at a tenth of the demo's lr, decaying linearly, no warm-up.
# No new parameters: the checkpoint loads as it is, and tools/test.py with
# this config evaluates any demo checkpoint merged.
_base_ = ['./tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py']
merge_stage = dict(ratio=0.5, merge_mlp=True)
model = dict(
    type='MergeConsistencyEncoderDecoder',
    teacher_fraction_max=0.,
    consistency_weight=3.,
    confidence=0.4,
    backbone=dict(token_merge=[None, merge_stage, merge_stage, merge_stage]))
load_from = 'work_dirs/demo/tokenfusion_rgbd/iter_1000.pth'
max_iters = 200
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters, save_best=None))
