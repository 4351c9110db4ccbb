# GeminiFusion on the synthetic RGB / depth / event / LiDAR set: the 4-modal
# TokenFusion demo config (same small MiT, data, schedule and budget) with
# GeminiFusion instead of token scoring and exchange. With M = 4 the
# backbone keeps two streams, RGB and an auxiliary stream combined from
# depth, event and LiDAR by the DeLiVER hub (per-modality score maps, max
# over the auxiliary modalities), GeminiFusion (8 heads) between them.
_base_ = [
    '../tokenfusion/tokenfusion_mit-tiny_1xb8-3k_synthetic-rgbdel-64x64.py'
]
model = dict(
    backbone=dict(
        hub=dict(type='AuxiliaryHub'),
        fusion=dict(_delete_=True, type='GeminiFusion', heads=8)))
# the fusion modules at 1/10 of the lr, as in the RGB-D demo config
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(fusion_layers=dict(lr_mult=0.1))))
custom_hooks = []  # GeminiFusion logs no statistics
