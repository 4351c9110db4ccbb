# GeminiFusion (ICML'24) Swin-T encoder, to swap into a GeminiFusion MiT
# config (same segmentor, head, ensemble and recipe):
#     _base_ = [<GeminiFusion MiT config>, '<this file>']
#     model = dict(backbone=swin_backbone,
#                  decode_head=dict(in_channels=swin_channels))
# One mmseg Swin for both modalities: shared patch-embedding conv, blocks and
# PatchMerging, per-modality patch-embedding and output LayerNorms, and a
# GeminiFusion module (8 heads) in every Swin block between the window
# attention and DropPath + residual (reference: main branch,
# models/swin_transformer.py). Official ImageNet-1k Swin-T weights; the
# per-modality norms keep ones / zeros, as the reference's loader leaves them.
swin_checkpoint = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'  # noqa
swin_backbone = dict(
    _delete_=True,  # replaces the MiT backbone of the config it goes into
    type='FusedSwin',
    arch='swin-t',
    num_modalities=2,
    in_channels=3,
    drop_path_rate=0.2,
    # after the window attention, the reference's place in Swin
    fusion=dict(type='GeminiFusion', heads=8, point='fuse_attention_output'),
    init_cfg=dict(type='Pretrained', checkpoint=swin_checkpoint))
swin_channels = [96, 192, 384, 768]  # stage widths, the head's in_channels
