"""What the OpenMMLab packages of this repository share. Nothing is imported
here: every module is imported by name where it is needed, so that e.g. the
segmentation package does not pull in mmdet3d through
:mod:`.mmdet3d_compat` or :mod:`.cpu_point_ops`."""
