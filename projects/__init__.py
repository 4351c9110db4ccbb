"""OpenMMLab plugin packages for multimodal fusion.

* :mod:`projects.fusion_math`: the fusion mathematics (torch only, no
  registry);
* :mod:`projects.common`: what the OpenMMLab packages share (compatibility
  patches, runner helpers, checkpoint unwrapping, the generated-data
  writer, CPU point ops);
* :mod:`projects.multimodal_seg`: multimodal semantic segmentation for
  mmseg (fused backbones with pluggable fusion layers, TokenFusion,
  GeminiFusion, channel exchange);
* :mod:`projects.multimodal_det3d`: multimodal 3D detection for mmdet3d
  (TokenFusion GroupFree3D + YOLOS).

Importing this package imports nothing else: the OpenMMLab packages apply
:mod:`projects.common.mmengine_compat` themselves when imported (configs do
it through ``custom_imports``).
"""
