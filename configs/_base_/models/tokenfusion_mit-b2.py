# TokenFusion (CVPR'22) on MiT-B2: one MiT for all modalities (shared conv /
# linear weights, per-modality LayerNorms, per-stage token score predictors,
# exchange of tokens scored below 0.02), the NVlabs SegFormer MLP head shared
# by the modalities, and the learned ensemble of their logits.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='MultiModalSegDataPreProcessor',
    modalities=('rgb', 'depth'),
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='TokenFusionEncoderDecoder',
    data_preprocessor=data_preprocessor,
    sparsity_weight=1e-6,
    sparsity_reduction='sum',
    train_alpha=True,
    backbone=dict(
        type='TokenFusionMiT',
        arch='b2',
        num_modalities=2,
        in_channels=3,
        drop_path_rate=0.1,
        fusion='attention',
        fusion_threshold=0.02),
    decode_head=dict(
        type='SegFormerMLPHead',
        in_channels=[64, 128, 320, 512],
        channels=256,
        dropout_ratio=0.1,
        num_classes=40,
        norm_cfg=norm_cfg,
        freeze_bn=True,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
