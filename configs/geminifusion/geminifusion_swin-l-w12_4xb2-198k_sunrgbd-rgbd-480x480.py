# GeminiFusion Swin-L (window 12, ImageNet-22k weights at 384) on SUN
# RGB-D-37: the Swin-T SUN RGB-D recipe, drop path 0.4. Reference result:
# 54.8 mIoU (released checkpoint, best-on-val ensemble).
_base_ = ['./geminifusion_swin-t_4xb2-198k_sunrgbd-rgbd-480x480.py']
checkpoint = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth'  # noqa
model = dict(
    backbone=dict(
        arch='swin-l-w12',
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]))
