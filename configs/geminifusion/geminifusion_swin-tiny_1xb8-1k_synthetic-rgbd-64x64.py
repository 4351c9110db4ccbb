# GeminiFusion Swin on the synthetic RGB-D set: the MiT GeminiFusion demo
# config (same data, schedule and budget) with a tiny Swin (16 channels,
# 2 blocks per stage so that both W-MSA and SW-MSA blocks fuse, window 4)
# instead of the tiny MiT.
_base_ = [
    './geminifusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py',
    '../_base_/models/geminifusion_swin-t.py'
]
model = dict(
    backbone=dict(
        _base_.swin_backbone,
        embed_dims=16,
        depths=[2, 2, 2, 2],
        num_heads=[1, 2, 4, 8],
        window_size=4,
        drop_path_rate=0.0,
        init_cfg=None),
    decode_head=dict(in_channels=[16, 32, 64, 128]))
# the fusion modules at 1/10 of the lr, as in the MiT demo config (their
# parameters are backbone.fusion_layers.*, as in the MiT config)
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(fusion_layers=dict(lr_mult=0.1))))
