# GroupFree3D L6-O256 for SUN RGB-D (mmdet3d ships ScanNet configs only):
# 10 classes, 12 heading bins with rotation, class-agnostic sizes, no height
# or colour input (the TokenFusion reference's flags).
#
# Loss weights follow the reference's coefficients in mmdet3d's scale: its
# total is 10 x L3d, and mmdet's SmoothL1Loss(beta=δ) is the reference's
# huber(δ) / δ, so a smooth-L1 term with coefficient c gets 10·c·δ:
# query points 0.2 -> 2.0, objectness 0.4 -> 4.0, centre (δ 1/9) -> 10/9,
# heading class 0.1 -> 1.0, heading residual (δ 0.04) -> 0.4,
# size (δ 0.0625) -> 0.625, semantic 0.1 -> 1.0.
sunrgbd_mean_sizes = [[2.114256, 1.620300, 0.927272],
                      [0.791118, 1.279516, 0.718182],
                      [0.923508, 1.867419, 0.845495],
                      [0.591958, 0.552978, 0.827272],
                      [0.699104, 0.454178, 0.75625],
                      [0.69519, 1.346299, 0.736364],
                      [0.528526, 1.002642, 1.172878],
                      [0.500618, 0.632163, 0.683424],
                      [0.404671, 1.071108, 1.688889],
                      [0.76584, 1.398258, 0.472728]]
model = dict(
    type='GroupFree3DNet',
    data_preprocessor=dict(type='Det3DDataPreprocessor'),
    backbone=dict(
        type='PointNet2SASSG',
        in_channels=3,
        num_points=(2048, 1024, 512, 256),
        radius=(0.2, 0.4, 0.8, 1.2),
        num_samples=(64, 32, 16, 16),
        sa_channels=((64, 64, 128), (128, 128, 256), (128, 128, 256),
                     (128, 128, 256)),
        fp_channels=((256, 256), (256, 288)),
        norm_cfg=dict(type='BN2d'),
        sa_cfg=dict(
            type='PointSAModule',
            pool_mod='max',
            use_xyz=True,
            normalize_xyz=True)),
    bbox_head=dict(
        type='TokenFusionGroupFree3DHead',
        num_classes=10,
        in_channels=288,
        num_decoder_layers=6,
        num_proposal=256,
        size_cls_agnostic=True,
        gt_per_seed=3,
        bbox_coder=dict(
            type='GroupFree3DBBoxCoder',
            num_sizes=10,
            num_dir_bins=12,
            with_rot=True,
            size_cls_agnostic=True,
            mean_sizes=sunrgbd_mean_sizes),
        transformerlayers=dict(
            type='BaseTransformerLayer',
            attn_cfgs=dict(
                type='GroupFree3DMHA',
                embed_dims=288,
                num_heads=8,
                attn_drop=0.1,
                dropout_layer=dict(type='Dropout', drop_prob=0.1)),
            ffn_cfgs=dict(
                embed_dims=288,
                feedforward_channels=2048,
                ffn_drop=0.1,
                act_cfg=dict(type='ReLU', inplace=True)),
            operation_order=('self_attn', 'norm', 'cross_attn', 'norm', 'ffn',
                             'norm')),
        pred_layer_cfg=dict(
            in_channels=288, shared_conv_channels=(288, 288), bias=True),
        sampling_objectness_loss=dict(
            type='mmdet.FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=2.0),
        objectness_loss=dict(
            type='mmdet.FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=4.0),
        center_loss=dict(
            type='mmdet.SmoothL1Loss',
            beta=1.0 / 9.0,
            reduction='sum',
            loss_weight=10.0 / 9.0),
        dir_class_loss=dict(
            type='mmdet.CrossEntropyLoss', reduction='sum', loss_weight=1.0),
        dir_res_loss=dict(
            type='mmdet.SmoothL1Loss',
            beta=0.04,
            reduction='sum',
            loss_weight=0.4),
        size_reg_loss=dict(
            type='mmdet.SmoothL1Loss',
            beta=0.0625,
            reduction='sum',
            loss_weight=0.625),
        semantic_loss=dict(
            type='mmdet.CrossEntropyLoss', reduction='sum', loss_weight=1.0)),
    train_cfg=dict(sample_mode='kps'),
    test_cfg=dict(
        sample_mode='kps',
        nms_thr=0.25,
        score_thr=0.0,
        per_class_proposal=True,
        prediction_stages='last'))
