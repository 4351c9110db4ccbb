# MCTF on DeiT-S (the reference's fine-tuning setting): mmpretrain's
# DeiT-S with multi-criteria token fusion in blocks 1-11, r = 16 tokens per
# block (197 -> 21 tokens), one-step-ahead attention, bidirectional
# matching, τ = (1, 20, 40) for similarity / informativeness / size,
# attention x size pooling, proportional attention; trained with the
# token-reduction consistency (teacher r drawn from 0..7, β = 0.4,
# λ = 3 for DeiT-S). The weights are DeiT's: no new parameter.
model = dict(
    type='TokenReductionConsistencyClassifier',
    backbone=dict(
        type='MCTFVisionTransformer',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        r=16,
        merge_layers=list(range(1, 12)),
        placement='one_step_ahead',
        tau_sim=1.,
        tau_info=20.,
        tau_size=40.,
        bidirectional=True,
        pooling='attention_size',
        prop_attn=True),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=1000,
        in_channels=384,
        loss=dict(
            type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    r_teacher_max=8,
    consistency_weight=3.,
    confidence=0.4)
