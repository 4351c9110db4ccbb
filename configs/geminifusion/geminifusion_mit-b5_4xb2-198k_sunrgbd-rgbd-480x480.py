# GeminiFusion MiT-B5 on SUN RGB-D-37: the MiT-B3 SUN RGB-D config with the
# B5 encoder, drop path 0.4 and weight decay 0.05 (the reference's SUN B5
# setting). Reference result: 53.3 mIoU (released checkpoint, single scale,
# best-on-val ensemble).
_base_ = ['./geminifusion_mit-b3_4xb2-198k_sunrgbd-rgbd-480x480.py']
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b5_20220624-658746d9.pth'  # noqa
model = dict(
    backbone=dict(
        arch='b5',
        drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
optim_wrapper = dict(optimizer=dict(weight_decay=0.05))
