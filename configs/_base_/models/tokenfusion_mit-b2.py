# TokenFusion (CVPR'22) on MiT-B2: the multi-stream MiT-B2 model with
# TokenFusion's fusion layer (per-stage token score predictors, exchange of
# tokens scored below 0.02 in every block, the score-weighted attention
# output of the reference code, summed l1 sparsity with λ = 1e-6).
_base_ = ['./multistream_mit-b2.py']
model = dict(
    backbone=dict(
        fusion=dict(
            type='TokenExchange',
            threshold=0.02,
            variant='attention',
            sparsity_weight=1e-6,
            sparsity_reduction='sum')))
