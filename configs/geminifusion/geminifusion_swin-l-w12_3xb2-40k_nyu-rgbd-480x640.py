# GeminiFusion Swin-L (window 12, ImageNet-22k weights at 384) on NYUDv2-40:
# the Swin-T recipe with drop path 0.2. Reference result: 60.2 mIoU
# (released checkpoint, single scale, best-on-val ensemble); 60.9 when
# fine-tuned from the SUN RGB-D model (not configured here).
_base_ = ['./geminifusion_swin-t_3xb2-40k_nyu-rgbd-480x640.py']
checkpoint = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth'  # noqa
model = dict(
    backbone=dict(
        arch='swin-l-w12',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]))
