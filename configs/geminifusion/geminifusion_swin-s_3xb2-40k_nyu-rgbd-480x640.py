# GeminiFusion Swin-S on NYUDv2-40: the Swin-T recipe with the Swin-S
# encoder (ImageNet-1k weights) and drop path 0.4. Reference result: 55.0
# mIoU (released checkpoint, single scale, best-on-val ensemble).
_base_ = ['./geminifusion_swin-t_3xb2-40k_nyu-rgbd-480x640.py']
checkpoint = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth'  # noqa
model = dict(
    backbone=dict(
        arch='swin-s',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
