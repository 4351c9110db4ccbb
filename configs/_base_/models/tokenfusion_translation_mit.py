# TokenFusion's image-translation GAN (the reference's gen_b2 / dis_b2):
# U-shaped fused MiT generator with token exchange (θ = 0.02) in the last
# block of each of its 5 encoder stages, patch discriminator per stream,
# loss = BCE GAN + 100 x L1 (every stream and the ensemble) + λ Σ|s|.
# λ = 1e-4 as the paper states (the reference code uses 1e-3), summed over
# stages, streams and tokens as the code does.
model = dict(
    type='MultiStreamTranslator',
    generator=dict(
        type='FusedMiTGenerator',
        num_modalities=2,
        fusion=dict(
            type='TokenExchange',
            threshold=0.02,
            blocks='last',
            sparsity_weight=1e-4,
            sparsity_reduction='sum')),
    discriminator=dict(type='FusedMiTDiscriminator'),
    stream_names=('reshading', 'edge_texture'),
    l1_weight=100.,
    gan_weight=1.)
