# GeminiFusion Swin-L (window 7, ImageNet-22k weights at 224) on NYUDv2-40:
# the Swin-T recipe with drop path 0.4. Reference result: 58.8 mIoU
# (released checkpoint, single scale, best-on-val ensemble).
_base_ = ['./geminifusion_swin-t_3xb2-40k_nyu-rgbd-480x640.py']
checkpoint = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window7_224_22k.pth'  # noqa
model = dict(
    backbone=dict(
        arch='swin-l',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]))
