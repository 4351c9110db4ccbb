# MCTF DeiT-T (paper: 72.7 % top-1 at 0.71 GFLOPs; DeiT-T 72.2 % at 1.26):
# as the DeiT-S recipe, consistency weight λ = 1 for DeiT-T.
_base_ = ['./mctf_deit-small_r16_8xb128-40e_in1k.py']
model = dict(
    backbone=dict(arch='deit-tiny'),
    head=dict(in_channels=192),
    consistency_weight=1.)
load_from = 'checkpoints/deit-tiny_in1k.pth'
