# TokenFusion MiT-B2 on NYUDv2-40 (reference recipe). Paper: 53.3 mIoU.
_base_ = ['./tokenfusion_mit-b3_3xb2-40k_nyu-rgbd-500x500.py']
checkpoint = 'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segformer/mit_b2_20220624-66e8bf70.pth'  # noqa
model = dict(
    backbone=dict(
        arch='b2', init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
