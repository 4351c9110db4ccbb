# Token merging in the GeminiFusion demo model, fine-tuned: the TokenFusion
# fine-tune (half of the tokens of stages 2-4 merged with one map for both
# streams, 200 iterations of the merge-consistency objective) from the
# trained `make demo FUSION=geminifusion` checkpoint, with the GeminiFusion
# demo's fusion layer and its lr factor; the fusion runs on the merged,
# still aligned token pairs.
_base_ = [
    '../tokenfusion/'
    'tokenfusion-merge_mit-tiny_1xb8-200-ft_synthetic-rgbd-64x64.py'
]
model = dict(
    backbone=dict(fusion=dict(_delete_=True, type='GeminiFusion', heads=8)))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(fusion_layers=dict(lr_mult=0.1))))
custom_hooks = []  # GeminiFusion logs no statistics
load_from = 'work_dirs/demo/geminifusion_rgbd/iter_1000.pth'
