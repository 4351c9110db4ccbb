# GeminiFusion Swin-T on SUN RGB-D-37: the MiT-B3 SUN RGB-D reference recipe
# (4 GPUs x 2 images, 480x480 crops, 3 stages of 66k iterations, evaluation
# at shorter side 480 aligned to 32) with the Swin-T encoder (ImageNet-1k
# weights) and drop path 0.4 (every SUN RGB-D model of the reference).
# Reference result: 50.2 mIoU (released checkpoint, best-on-val ensemble).
_base_ = [
    './geminifusion_mit-b3_4xb2-198k_sunrgbd-rgbd-480x480.py',
    '../_base_/models/geminifusion_swin-t.py'
]
model = dict(
    backbone=dict(_base_.swin_backbone, drop_path_rate=0.4),
    decode_head=dict(in_channels=_base_.swin_channels))
