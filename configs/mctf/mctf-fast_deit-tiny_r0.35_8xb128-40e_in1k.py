# MCTF-Fast DeiT-T (paper: 72.7 % top-1 at 0.75 GFLOPs).
_base_ = ['./mctf_deit-tiny_r16_8xb128-40e_in1k.py']
model = dict(backbone=dict(r=0.35, merge_layers=[3, 6, 9]), r_teacher_max=0.35)
