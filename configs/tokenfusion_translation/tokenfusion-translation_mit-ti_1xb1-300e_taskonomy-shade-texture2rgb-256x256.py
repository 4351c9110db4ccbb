# TokenFusion-Ti, Taskonomy Shade + Texture -> RGB: the S model at 10 encoder
# blocks (docs/translation.md#configs-the-papers-tasks-and-sizes).
_base_ = [
    './tokenfusion-translation_mit-s_1xb1-300e_taskonomy-'
    'shade-texture2rgb-256x256.py'
]
model = dict(
    generator=dict(
        encoder_depths=(2, 2, 2, 2, 2), decoder_depths=(3, 2, 2, 2)))
