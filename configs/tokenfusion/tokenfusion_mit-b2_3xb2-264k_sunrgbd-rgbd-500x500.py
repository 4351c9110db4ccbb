# TokenFusion MiT-B2 on SUN RGB-D-37 (NYUDv2 reference recipe). Paper: about
# 50.3 mIoU (unverified).
_base_ = ['./tokenfusion_mit-b3_3xb2-264k_sunrgbd-rgbd-500x500.py']
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b2_20220624-66e8bf70.pth'  # noqa
model = dict(
    backbone=dict(
        arch='b2', init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
