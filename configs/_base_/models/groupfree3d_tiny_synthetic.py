# A GroupFree3D small enough to train on CPU in minutes, for the synthetic
# scenes (2048 points, 5 classes): 64-d seeds, 2 decoder layers, 64
# proposals.
_base_ = ['./groupfree3d_sunrgbd.py']
synthetic_mean_sizes = [[2.114256, 1.6203, 0.927272],
                        [0.743154, 1.3129075, 0.727273],
                        [0.591958, 0.552978, 0.827272],
                        [0.743154, 1.3129075, 0.727273],
                        [0.404671, 1.071108, 1.688889]]
dims = 64
model = dict(
    backbone=dict(
        num_points=(512, 256, 128, 64),
        num_samples=(32, 16, 16, 8),
        sa_channels=((32, 32, 64), (64, 64, 128), (64, 64, 128),
                     (64, 64, 128)),
        fp_channels=((128, 128), (128, dims))),
    bbox_head=dict(
        num_classes=5,
        in_channels=dims,
        num_decoder_layers=2,
        num_proposal=64,
        bbox_coder=dict(num_sizes=5, mean_sizes=synthetic_mean_sizes),
        transformerlayers=dict(
            attn_cfgs=dict(embed_dims=dims, num_heads=4),
            ffn_cfgs=dict(embed_dims=dims, feedforward_channels=128)),
        pred_layer_cfg=dict(
            in_channels=dims, shared_conv_channels=(dims, dims)),
        decoder_self_posembeds=dict(
            type='ConvBNPositionalEncoding',
            input_channel=6,
            num_pos_feats=dims),
        decoder_cross_posembeds=dict(
            type='ConvBNPositionalEncoding',
            input_channel=3,
            num_pos_feats=dims)))
