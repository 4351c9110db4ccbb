# GeminiFusion Swin-T on NYUDv2-40: the reference recipe of the MiT-B3
# config (3 GPUs x 2 images, 480x640 crops, 3 stages of 100 epochs with a
# fresh AdamW at lr 6e-5 / 3e-5 / 1.5e-5, decoder lr x 10, no weight decay on
# encoder norms, wd 0.01) with the Swin-T encoder of
# ../_base_/models/geminifusion_swin-t.py, drop path 0.2 and the official
# ImageNet-1k Swin-T weights (the per-modality patch-embedding and output
# norms keep ones / zeros, as the reference's loader leaves them).
# Reference result: 52.2 mIoU (released checkpoint, single scale, best-on-
# val ensemble).
_base_ = [
    './geminifusion_mit-b3_3xb2-40k_nyu-rgbd-480x640.py',
    '../_base_/models/geminifusion_swin-t.py'
]
model = dict(
    backbone=_base_.swin_backbone,
    decode_head=dict(in_channels=_base_.swin_channels))
