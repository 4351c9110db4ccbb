# GeminiFusion (ICML'24) on MiT-B3: the TokenFusion model (one MiT for both
# modalities with shared conv / linear weights and per-modality LayerNorms,
# the NVlabs SegFormer MLP head shared by the two streams, the ensemble of
# their logits) with a GeminiFusion module in every block of every stage
# (pixel-wise attention of each modality's token to a noised copy of itself
# and to a relation-modulated key carrying the other modality's token, 8
# heads, before the shared attention projection) instead of score
# predictors and token exchange. No sparsity loss: loss = CE(rgb) +
# CE(depth) + CE(ensemble), as the reference.
_base_ = ['./multistream_mit-b2.py']
model = dict(
    # the reference keeps alpha out of every optimizer group: the ensemble
    # is 0.5 * (y_rgb + y_depth) throughout training
    train_alpha=False,
    backbone=dict(
        arch='b3',
        drop_path_rate=0.4,
        fusion=dict(type='GeminiFusion', heads=8)))
