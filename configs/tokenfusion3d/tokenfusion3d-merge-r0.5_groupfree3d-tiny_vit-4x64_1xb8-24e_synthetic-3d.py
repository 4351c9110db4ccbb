# The 3D demo's fusion model (the reference rule) with MCTF token merging in
# its ViT: in every block but the first, half of the patch tokens merge
# (192 -> 96 -> 48 -> 24 on the 12x16 grid); the class and detection tokens
# never merge, and a seed reads the merged token holding its patch. No new
# parameters: checkpoints of the config this one inherits load unchanged,
# so it also evaluates them with merging switched on (tools/test.py).
_base_ = ['./tokenfusion3d_groupfree3d-tiny_vit-4x64_1xb8-24e_synthetic-3d.py']
model = dict(img_backbone=dict(token_merge=dict(r=0.5)))
