# GeminiFusion MiT-B5 on NYUDv2-40: the MiT-B3 config's reference recipe
# with the B5 encoder and drop path 0.35. Reference result: 57.7 mIoU
# (released checkpoint, single scale, best-on-val ensemble).
_base_ = ['./geminifusion_mit-b3_3xb2-40k_nyu-rgbd-480x640.py']
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b5_20220624-658746d9.pth'  # noqa
model = dict(
    backbone=dict(
        arch='b5',
        drop_path_rate=0.35,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
