# TokenFusion on ScanNetV2 with 10 posed RGB frames per scene (paper Table
# 10): mmdet3d's GroupFree3D PointNet++w2x L12-O512 on the points, a YOLOS-S
# ViT (mid-layer position embeddings) on the views, one ViT block before
# each of the 12 decoder layers. Needs the infos with posed images:
# tools/dataset_converters/scannet_posed_images.py. The 0-frame baseline is
# mmdet3d's groupfree3d_w2x-head-L12-O512_4xb8_scannet-seg.py.
_base_ = [
    'mmdet3d::groupfree3d/groupfree3d_w2x-head-L12-O512_4xb8_scannet-seg.py'
]
custom_imports = dict(
    imports=['projects.multimodal_det3d'], allow_failed_imports=False)
deit_small = ('https://dl.fbaipublicfiles.com/deit/'
              'deit_small_patch16_224-cd65a155.pth')
num_views = 10
# ScanNet colour frames (1296x968) are resized to 320x240 (a 20x15 patch
# grid per view).
view_scale = (320, 240)

model = dict(
    type='TokenFusionGroupFree3D',
    data_preprocessor=dict(
        type='Det3DDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=16),
    bbox_head=dict(type='TokenFusionGroupFree3DHead'),
    img_backbone=dict(
        type='mmdet.YOLOSViT',
        arch='small',
        num_det_tokens=100,
        init_pe_size=view_scale[::-1],
        mid_pe=True,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=deit_small)),
    img_bbox_head=dict(type='mmdet.YOLOSHead', num_classes=18, embed_dims=384),
    fusion=dict(
        threshold=0.02,
        blocks_per_layer=1,
        detach_image=True,
        proj_key='lidar2img',
        pixel_origin=0.0,
        box_targets_2d='projected'),
    loss_weight_3d=1.0,
    loss_weight_2d=1.0,
    sparsity_weight=1e-3)
custom_hooks = [
    # the reference's 120 / 600 of the schedule
    dict(type='TokenFusion3DHook', img_loss_epochs=16),
    dict(type='FusionStatsHook', interval=50)
]
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)

dataset_type = 'MultiViewScanNetDataset'
# The views are loaded after the 3D augmentation: RandomFlip3D would also
# flip a loaded image, which a list of views is not. The projection undoes
# the 3D augmentation recorded in the metainfo instead.
train_pipeline = _base_.train_pipeline
train_pipeline.insert(
    -1,
    dict(
        type='LoadMultiViewPosedImages',
        num_views=num_views,
        img_scale=view_scale))
train_pipeline[-1]['keys'] = _base_.train_pipeline[-1]['keys'] + ['img']
train_pipeline.insert(1, dict(type='CheckPointCloud'))
test_pipeline = _base_.test_pipeline
test_pipeline.insert(
    2,
    dict(
        type='LoadMultiViewPosedImages',
        num_views=num_views,
        img_scale=view_scale,
        test_mode=True))
test_pipeline[-1]['keys'] = ['points', 'img']
test_pipeline.insert(1, dict(type='CheckPointCloud'))
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            type=dataset_type,
            ann_file='scannet_infos_train_posed.pkl',
            data_prefix=dict(
                pts='points',
                pts_instance_mask='instance_mask',
                pts_semantic_mask='semantic_mask',
                img='posed_images'),
            pipeline=train_pipeline)))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file='scannet_infos_val_posed.pkl',
        data_prefix=dict(
            pts='points',
            pts_instance_mask='instance_mask',
            pts_semantic_mask='semantic_mask',
            img='posed_images'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# The image branch keeps the reference's lr 5e-5 and weight decay 1e-4.
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={'img': dict(lr_mult=5e-5 / 0.006, decay_mult=0.2)}))
