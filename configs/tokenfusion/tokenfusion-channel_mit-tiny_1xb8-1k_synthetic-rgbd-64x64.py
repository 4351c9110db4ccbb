# TokenFusion + CEN-style channel exchange (TokenFusion supplementary,
# Table 9) on the synthetic RGB-D set: the TokenFusion demo plus channel
# exchange in norm1 / norm2 of every block (θ_c = 2e-2, as CEN) and the l1
# term λ2 · Σ|γ| on those LayerNorms' scale factors (λ2 = 1e-3).
_base_ = ['./tokenfusion_mit-tiny_1xb8-1k_synthetic-rgbd-64x64.py']
model = dict(
    backbone=dict(fusion=[
        dict(
            type='TokenExchange',
            threshold=0.02,
            sparsity_weight=0.01,
            sparsity_reduction='mean'),
        dict(
            type='ChannelExchange',
            threshold=2e-2,
            norms=('norm1', 'norm2'),
            sparsity_weight=1e-3)
    ]))
