# One MiT-B2 for all modalities (shared conv / linear weights, per-modality
# LayerNorms, the modalities stacked in the batch), the NVlabs SegFormer MLP
# head shared by the streams, and the learned ensemble of their logits. No
# fusion layer: the streams meet only in the ensemble. TokenFusion and
# GeminiFusion add theirs in `backbone.fusion`.
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='MultiModalSegDataPreProcessor',
    modalities=('rgb', 'depth'),
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='MultiStreamEncoderDecoder',
    data_preprocessor=data_preprocessor,
    train_alpha=True,
    backbone=dict(
        type='FusedMiT',
        arch='b2',
        num_modalities=2,
        in_channels=3,
        drop_path_rate=0.1),
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
