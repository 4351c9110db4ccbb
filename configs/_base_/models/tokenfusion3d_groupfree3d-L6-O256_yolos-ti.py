# TokenFusion for 3D detection on SUN RGB-D: GroupFree3D L6-O256 on the
# points, a YOLOS-Ti ViT on the image (ImageNet DeiT-Ti weights, 100
# detection tokens), two ViT blocks before each of the 6 decoder layers.
_base_ = ['./groupfree3d_sunrgbd.py']
deit_tiny = ('https://dl.fbaipublicfiles.com/deit/'
             'deit_tiny_patch16_224-a1311bcf.pth')
model = dict(
    type='TokenFusionGroupFree3D',
    # ImageNet mean/std in RGB order (the reference fed BGR by mistake);
    # padding to whole 16-pixel patches.
    data_preprocessor=dict(
        type='Det3DDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=16),
    img_backbone=dict(
        type='mmdet.YOLOSViT',
        arch='tiny',
        num_det_tokens=100,
        init_pe_size=(800, 1333),
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=deit_tiny)),
    img_bbox_head=dict(type='mmdet.YOLOSHead', num_classes=10,
                       embed_dims=192),
    fusion=dict(
        threshold=0.02,
        blocks_per_layer=2,
        detach_image=True,
        proj_key='depth2img',
        pixel_origin=1.0,
        box_targets_2d='annotated'),
    loss_weight_3d=1.0,
    loss_weight_2d=1.0,
    sparsity_weight=1e-3)
# The ViT gets no gradient once the 2D loss is off (the 3D loss stops at
# the detached image tokens).
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
# The 2D loss trains the ViT for the first 120 of the 600 epochs (set on
# the model before every iteration); the fusion statistics are logged.
custom_hooks = [
    dict(type='TokenFusion3DHook', img_loss_epochs=120),
    dict(type='FusionStatsHook', interval=50)
]
