_base_ = [
    '../_base_/models/tokenfusion3d_groupfree3d-L6-O256_yolos-ti.py',
    '../_base_/datasets/sunrgbd-3d-image.py',
    '../_base_/schedules/groupfree3d_adamw_600e.py',
    '../_base_/det3d_runtime.py'
]
