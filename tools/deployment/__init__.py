"""Deployment tools: ONNX export of the fused segmentors
(``pytorch2onnx.py``, see ``docs/deployment.md``)."""
