"""The parts of ``tools/analysis_tools/benchmark.py``, one concern each.

* :mod:`.models`: ``--models`` names -> segmentors / backbones;
* :mod:`.steps`: synthetic inputs and the measured inference / train step;
* :mod:`.macs`: MAC and parameter counting (total and fusion share);
* :mod:`.memory`: peak memory growth (CUDA allocator or /proc);
* :mod:`.timing`: timing and profiling of a step;
* :mod:`.worker`: one measurement in one process (and its ``-m`` entry);
* :mod:`.isolation`: running workers in fresh subprocesses;
* :mod:`.scaling`: the token-scaling run and its power-law fit;
* :mod:`.backends`: the ONNX export in onnxruntime vs PyTorch eager
  (``--backend ort``);
* :mod:`.report`: the markdown tables and the written report.

Nothing is imported here, so that ``python -m
tools.analysis_tools.benchmarking.worker`` loads only what a worker needs.
"""
