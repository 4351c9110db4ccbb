# ToMe on the demo ViT, the baseline of the MCTF config of the same budget:
# r = 6 in all 6 layers (65 -> 29 tokens), merged between attention and
# MLP, matched on the keys by similarity alone, unidirectional, size-
# weighted averages, proportional attention. Training is ToMe's plain
# fine-tuning at r (no teacher pass) for the same 500 iterations.
_base_ = ['./mctf_vit-tiny-p4_1xb64-500_synthetic-shapes-32x32.py']
model = dict(
    backbone=dict(
        merge_layers=[0, 1, 2, 3, 4, 5],
        placement='after_attention',
        metric='keys',
        tau_info=0.,
        tau_size=0.,
        bidirectional=False,
        pooling='size'),
    r_teacher_max=0)
