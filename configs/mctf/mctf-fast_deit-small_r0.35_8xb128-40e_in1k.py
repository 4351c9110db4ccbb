# MCTF-Fast DeiT-S (paper: 80.1 % top-1 at 2.76 GFLOPs, 1.4x MCTF's
# throughput): 35 % of the unprotected tokens merged in blocks 3, 6 and 9
# only (197 -> 129 -> 85 -> 56 tokens); teacher r drawn from 0.00 .. 0.34.
_base_ = ['./mctf_deit-small_r16_8xb128-40e_in1k.py']
model = dict(backbone=dict(r=0.35, merge_layers=[3, 6, 9]), r_teacher_max=0.35)
