# The 3D demo's fusion model with the soft gate: every seed key inside the
# image becomes s * k + (1 - s) * h(image token), so the point geometry
# never leaves the keys and the 3D loss reaches every score; the sparsity
# term is the mean score over the seeds inside the image (λ 0.1) instead of
# the reference's sum. The reference rule (hard replacement below θ, λΣs)
# is the config this one inherits.
_base_ = ['./tokenfusion3d_groupfree3d-tiny_vit-4x64_1xb8-24e_synthetic-3d.py']
model = dict(
    fusion=dict(substitution='soft_gate'),
    sparsity_reduction='mean',
    sparsity_weight=0.1)
