# The 3D demo's fusion model (make demo-3d): the tiny GroupFree3D of the
# points-only baseline fused with a 4-block 64-d YOLOS ViT trained from
# scratch. Unlike the reference, whose ViT starts from ImageNet weights, the
# 3D loss also trains the ViT (detach_image=False) and the image branch
# learns at the default lr: from scratch and on this budget the 2D DETR
# loss alone, at lr 5e-5, teaches it too slowly to tell the red tables from
# the blue desks.
_base_ = [
    '../_base_/models/groupfree3d_tiny_synthetic.py',
    '../_base_/datasets/synthetic-indoor-3d-image.py',
    '../_base_/schedules/synthetic_3d_adamw_24e.py',
    '../_base_/det3d_runtime.py'
]
model = dict(
    type='TokenFusionGroupFree3D',
    data_preprocessor=dict(
        type='Det3DDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=16),
    img_backbone=dict(
        type='mmdet.YOLOSViT',
        arch=dict(embed_dims=64, num_layers=4, num_heads=4),
        num_det_tokens=20,
        init_pe_size=(192, 256),
        drop_path_rate=0.0),
    img_bbox_head=dict(type='mmdet.YOLOSHead', num_classes=5, embed_dims=64),
    fusion=dict(
        threshold=0.02,
        blocks_per_layer=2,
        detach_image=False,
        proj_key='depth2img',
        pixel_origin=1.0,
        box_targets_2d='annotated'),
    sparsity_weight=1e-3)
custom_hooks = [
    dict(type='TokenFusion3DHook', img_loss_epochs=24),
    dict(type='FusionStatsHook', interval=5)
]
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'img': dict(lr_mult=1.0, decay_mult=1.0)}))
default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval=24, max_keep_ckpts=1))
