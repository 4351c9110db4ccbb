"""Export a TokenFusion / GeminiFusion segmentor to ONNX.

Usage::

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT \\
        --shape 480 640 [--dynamic] [--opset 17] [--out model.onnx] \\
        [--verify] [--cfg-options key=value ...]

``--random-weights`` instead of CHECKPOINT exports an untrained model (for
tests and latency measurements only).

Graph contract (see ``docs/deployment.md``):

* input ``inputs``: float32 (B, sum of the modalities' ``in_channels``, H,
  W), the raw modalities concatenated along channels in the order of the
  data preprocessor's ``modalities``, exactly as the test pipeline packs a
  sample (RGB in BGR order as mmcv reads it, depth in its raw unit, e.g.
  millimetres for NYUDv2), without padding. The data preprocessor's
  per-modality normalisation (channel flip, (x - mean) / std, tiling of
  depth to 3 channels, zeros for ``missing_modalities``) is part of the
  graph.
* outputs ``logits``: (B, K, H, W), the ensemble's logits, and
  ``stream_logits``: (S, B, K, H, W), every stream's logits, both at input
  resolution, as ``MultiStreamEncoderDecoder.encode_decode`` computes them
  (whole-image inference; argmax over K is the prediction).

Without ``--dynamic`` B = 1 and (H, W) = ``--shape``; with it batch, height
and width are dynamic (MiT backbones only: mmseg's Swin fixes its window
padding at trace time). The opset, the modalities (names, channels,
normalisation), the stream names, the number of classes and, where the
checkpoint's meta has them, the class names are stored in the model's
``metadata_props`` (JSON values).

Exporter: PyTorch's TorchScript-based exporter (``dynamo=False``); it traces
the model once, so the TokenFusion exchange must be (and is) tensor
operations on the scores (``Less`` + ``Where`` in the graph), never a Python
decision. ``--verify`` runs the exported file in onnxruntime (CPU) and
compares it with PyTorch at the export shape and, with ``--dynamic``, at a
second shape.
"""
import argparse
import json
import os
import os.path as osp
import sys
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import CheckpointLoader

# importing the package registers its modules and makes checkpoints load
# under torch >= 2.6
import projects.multimodal_seg  # noqa: F401
from projects.common.checkpoint import (CheckpointMismatchError,
                                        load_state_dict_exactly)
from projects.multimodal_seg.models import (FusedSwin,
                                            MultiModalSegDataPreProcessor,
                                            MultiStreamEncoderDecoder)

DEFAULT_OPSET = 17  # the first opset with LayerNormalization as one node
# the exporter's range for these models: scaled_dot_product_attention needs
# opset 14, the TorchScript-based exporter of torch 2.13 goes up to 20
MIN_OPSET, MAX_OPSET = 14, 20
INPUT_NAME = 'inputs'
OUTPUT_NAMES = ('logits', 'stream_logits')
DYNAMIC_AXES = {
    'inputs': {
        0: 'batch',
        2: 'height',
        3: 'width'
    },
    'logits': {
        0: 'batch',
        2: 'height',
        3: 'width'
    },
    'stream_logits': {
        1: 'batch',
        3: 'height',
        4: 'width'
    }
}
DEPLOY_REQUIREMENTS = 'requirements/deploy.txt'


class ExportError(Exception):
    """An export that cannot be done as asked; the message says why."""


class UnsupportedModelError(ExportError):
    """The config builds a model (or asks for a graph) this tool cannot
    export."""


def _require(module: str):
    """Import ``onnx`` / ``onnxruntime`` with an error that says how to
    install them."""
    try:
        return __import__(module)
    except ImportError as error:
        raise ExportError(
            f'{module} is not installed: pip install -r '
            f'{DEPLOY_REQUIREMENTS} (from the repository root)') from error


def build_segmentor(
    config: str,
    cfg_options: Optional[dict] = None
) -> Tuple[MultiStreamEncoderDecoder, Config]:
    """The config's model, untrained, in eval mode on the CPU.

    Raises:
        UnsupportedModelError: The model is not a
            ``MultiStreamEncoderDecoder`` with a
            ``MultiModalSegDataPreProcessor``.
    """
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    # No init_weights(): a Pretrained init_cfg would download ImageNet
    # weights that the checkpoint replaces anyway (random weights keep the
    # constructors' initialisation).
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmseg')):
        from mmseg.registry import MODELS
        model = MODELS.build(cfg.model)
    if not isinstance(model, MultiStreamEncoderDecoder):
        raise UnsupportedModelError(
            f'{config} builds {type(model).__name__}; pytorch2onnx exports '
            'MultiStreamEncoderDecoder models (the TokenFusion and '
            'GeminiFusion configs), whose graph contract (packed raw '
            'modalities in, ensemble and stream logits out) it implements')
    if not isinstance(model.data_preprocessor, MultiModalSegDataPreProcessor):
        raise UnsupportedModelError(
            f'{config}: the data preprocessor is a '
            f'{type(model.data_preprocessor).__name__}, expected '
            'MultiModalSegDataPreProcessor (its per-modality normalisation '
            'becomes part of the graph)')
    return model.eval(), cfg


def load_checkpoint_strict(model: nn.Module,
                           checkpoint: str,
                           config: str = 'the config') -> dict:
    """Load every tensor of the model from ``checkpoint``, nothing more,
    nothing less (:func:`load_state_dict_exactly`).

    Returns:
        dict: The checkpoint's ``meta`` (``{}`` if it has none).
    """
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    load_state_dict_exactly(model, loaded, checkpoint,
                            f'the model of {config}')
    meta = loaded.get('meta') if isinstance(loaded, dict) else None
    return meta if isinstance(meta, dict) else {}


def classes_of(meta: dict) -> Optional[List[str]]:
    """Class names from a checkpoint's meta (mmengine: ``dataset_meta``;
    mmseg 0.x: ``CLASSES``), None if it has none."""
    classes = (meta.get('dataset_meta') or {}).get('classes') or \
        meta.get('CLASSES')
    return [str(c) for c in classes] if classes else None


class DeployableSegmentor(nn.Module):
    """What the ONNX graph computes: the data preprocessor's per-modality
    normalisation on a batch of packed raw samples, then whole-image
    ``encode_decode``, split into the ensemble's and every stream's logits.

    ``MultiModalSegDataPreProcessor.normalize`` runs on the whole
    (B, C, H, W) batch, which keeps the batch size symbolic in a dynamic
    export.

    Args:
        segmentor (MultiStreamEncoderDecoder): In eval mode.
        preprocessor (MultiModalSegDataPreProcessor, optional): Whose
            normalisation the graph applies. Defaults to the segmentor's
            own.
    """

    def __init__(
            self,
            segmentor: MultiStreamEncoderDecoder,
            preprocessor: Optional[MultiModalSegDataPreProcessor] = None
    ) -> None:
        super().__init__()
        pre = preprocessor or segmentor.data_preprocessor
        self.segmentor = segmentor
        self.modalities = tuple(pre.modalities)
        self.in_channels = tuple(pre.in_channels)
        self.out_channels = tuple(pre.out_channels)
        self.missing_modalities = tuple(pre.missing_modalities)
        if sum(self.out_channels) != segmentor.backbone.num_modalities * \
                segmentor.backbone.in_channels:
            raise UnsupportedModelError(
                f'the data preprocessor gives {sum(self.out_channels)} '
                f'channels ({dict(zip(self.modalities, self.out_channels))})'
                f', the backbone expects {segmentor.backbone.num_modalities}'
                f' x {segmentor.backbone.in_channels}')
        self.preprocessor = pre
        self.num_classes = segmentor.decode_head.out_channels
        self.stream_names = tuple(segmentor.stream_names)

    def normalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, sum in_channels, H, W) raw -> (B, sum out_channels, H, W)."""
        return self.preprocessor.normalize(inputs)

    def forward(self,
                inputs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """-> ``logits`` (B, K, H, W), ``stream_logits`` (S, B, K, H, W)."""
        # encode_decode reads no image meta (whole-image inference)
        out = self.segmentor.encode_decode(self.normalize(inputs), None)
        k = self.num_classes
        streams = out[:, k:].unflatten(1, (len(self.stream_names), k))
        return out[:, :k], streams.transpose(0, 1)

    def metadata(self) -> Dict[str, str]:
        """What a deployed user needs to know about the graph (JSON
        values of ``metadata_props``)."""
        normalization = [
            dict(
                name=n.name,
                in_channels=n.in_channels,
                mean=n.mean.flatten().tolist(),
                std=n.std.flatten().tolist(),
                bgr_to_rgb=n.bgr_to_rgb,
                repeat=n.repeat,
                missing=n.name in self.missing_modalities)
            for n in self.preprocessor.norms
        ]
        return dict(
            modalities=json.dumps(list(self.modalities)),
            in_channels=json.dumps(list(self.in_channels)),
            normalization=json.dumps(normalization),
            stream_names=json.dumps(list(self.stream_names)),
            num_classes=json.dumps(self.num_classes),
            fusion=json.dumps([
                type(layer).__name__
                for layer in self.segmentor.backbone.fusion_layers
            ]),
            backbone=json.dumps(type(self.segmentor.backbone).__name__))


def example_inputs(deployable: DeployableSegmentor,
                   shape: Sequence[int],
                   batch: int = 1,
                   seed: int = 0) -> torch.Tensor:
    """Raw-looking inputs (B, sum in_channels, H, W): uniform in [0, 255]
    for 8-bit modalities, [0, 10000] for depth (millimetres). The trace
    does not depend on the values (the exchange is data-dependent in the
    graph); they only make comparisons meaningful."""
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for name, channels in zip(deployable.modalities, deployable.in_channels):
        scale = 10000. if name == 'depth' else 255.
        parts.append(
            torch.rand(batch, channels, *shape, generator=generator) * scale)
    return torch.cat(parts, dim=1)


def check_exportable(deployable: DeployableSegmentor, dynamic: bool,
                     opset: int) -> None:
    """Refuse what would export but not compute what was asked.

    Raises:
        UnsupportedModelError: ``dynamic`` with a Swin backbone; a backbone
            that merges tokens.
        ExportError: An opset outside :data:`MIN_OPSET` ..
            :data:`MAX_OPSET`.
    """
    if getattr(deployable.segmentor.backbone, 'merges_tokens', False):
        raise UnsupportedModelError(
            'model.backbone.token_merge is set: the per-image matching of '
            'token merging (sorting, scatters into a data-dependent number '
            'of tokens) is not part of the exported graph contract. Export '
            'the model without it (--cfg-options model.backbone.token_merge='
            'None); merging adds no parameters, so the checkpoint loads '
            'unchanged.')
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(
            f'--opset {opset}: opsets {MIN_OPSET} to {MAX_OPSET} are '
            f'supported (default {DEFAULT_OPSET}): attention '
            f'(scaled_dot_product_attention) needs {MIN_OPSET}, the '
            f'TorchScript-based exporter stops at {MAX_OPSET}')
    if dynamic and isinstance(deployable.segmentor.backbone, FusedSwin):
        raise UnsupportedModelError(
            '--dynamic is not supported for FusedSwin: mmseg\'s '
            'ShiftWindowMSA computes the window padding (pad_r / pad_b) and '
            'the shifted-window attention mask from the feature size as '
            'Python ints, and window_reverse takes the batch size with '
            'int(), so a traced graph keeps the export shape and fails or '
            'is wrong at any other. Export Swin models without --dynamic, '
            'once per input shape.')


def export(deployable: DeployableSegmentor,
           out: str,
           shape: Sequence[int],
           dynamic: bool = False,
           opset: int = DEFAULT_OPSET,
           metadata: Optional[Dict[str, str]] = None) -> List[str]:
    """Trace ``deployable`` at batch 1 and ``shape`` (H, W), write the ONNX
    file ``out`` with the metadata, check it with ``onnx.checker``.

    Returns:
        list[str]: Where the tracer read a Python value from a traced
        tensor (``file:line (count)``): such values are constants of the
        graph. For the models of this repository they are stream counts
        and shape checks (``tests/tools/test_pytorch2onnx.py`` checks that
        the exchange decision stays in the graph).
    """
    onnx = _require('onnx')
    check_exportable(deployable, dynamic, opset)
    deployable.eval()
    # traced into a side file: a failed export leaves no half-made file
    # (and an earlier export is kept) where the output belongs
    traced = f'{out}.partial'
    try:
        sites = _trace(deployable, traced, shape, dynamic, opset)
        model = onnx.load(traced)
        _annotate(model, deployable, shape, dynamic, opset, metadata)
        onnx.checker.check_model(model)
        onnx.save(model, out)
    finally:
        if osp.exists(traced):
            os.remove(traced)
    return [f'{site} ({n})' for site, n in sorted(sites.items())]


def _trace(deployable: DeployableSegmentor, out: str, shape: Sequence[int],
           dynamic: bool, opset: int) -> Dict[str, int]:
    """``torch.onnx.export`` (TorchScript-based) of ``deployable`` to
    ``out``; returns the tracer's warnings counted by ``file:line``."""
    inputs = example_inputs(deployable, shape)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', torch.jit.TracerWarning)
        # the classic exporter is chosen on purpose (see the module doc)
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        with torch.no_grad():
            torch.onnx.export(
                deployable, (inputs, ),
                out,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=DYNAMIC_AXES if dynamic else None,
                do_constant_folding=True)
    sites: Dict[str, int] = {}
    for w in caught:
        if issubclass(w.category, torch.jit.TracerWarning):
            site = f'{osp.relpath(w.filename, REPO_ROOT)}:{w.lineno}'
            sites[site] = sites.get(site, 0) + 1
    return sites


def _annotate(model, deployable: DeployableSegmentor, shape: Sequence[int],
              dynamic: bool, opset: int,
              metadata: Optional[Dict[str, str]]) -> None:
    """Write the graph contract into the ``onnx.ModelProto``: its
    ``metadata_props`` (JSON values) and ``doc_string``."""
    props = dict(
        opset=json.dumps(opset),
        dynamic=json.dumps(dynamic),
        export_shape=json.dumps([1, sum(deployable.in_channels), *shape]),
        exporter=json.dumps(f'torch {torch.__version__} TorchScript-based '
                            'torch.onnx.export (dynamo=False)'))
    props.update(deployable.metadata())
    props.update(metadata or {})
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = (
        f'{INPUT_NAME}: float32 (B, {sum(deployable.in_channels)}, H, W), '
        f'raw {"+".join(deployable.modalities)} packed as the test pipeline '
        'packs them; logits: (B, K, H, W) ensemble; stream_logits: '
        '(S, B, K, H, W). See docs/deployment.md.')


def onnxruntime_session(path: str, threads: int = 0):
    """A CPU onnxruntime session of ``path`` with ``threads`` intra-op
    threads (0: onnxruntime's default) and no inter-op parallelism."""
    ort = _require('onnxruntime')
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # idle worker threads sleep instead of spinning, so that they do not
    # take the cores from whatever runs next (e.g. PyTorch in a benchmark)
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return ort.InferenceSession(
        path, sess_options=options, providers=['CPUExecutionProvider'])


def max_differences(deployable: DeployableSegmentor, session,
                    inputs: torch.Tensor) -> Dict[str, float]:
    """Largest absolute difference of every output between onnxruntime
    and PyTorch on ``inputs``."""
    with torch.no_grad():
        expected = deployable(inputs)
    got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: inputs.numpy()})
    diffs = {}
    for name, ref, value in zip(OUTPUT_NAMES, expected, got):
        if tuple(value.shape) != tuple(ref.shape):
            raise ExportError(f'onnxruntime gives {name} of shape '
                              f'{tuple(value.shape)}, PyTorch '
                              f'{tuple(ref.shape)}')
        diffs[name] = float((torch.from_numpy(value) - ref).abs().max())
    return diffs


def verify(deployable: DeployableSegmentor, path: str,
           shapes: Sequence[Tuple[int, int, int]]) -> List[str]:
    """onnxruntime vs PyTorch at every (batch, H, W) of ``shapes``, one
    line per shape."""
    session = onnxruntime_session(path)
    lines = []
    for batch, h, w in shapes:
        inputs = example_inputs(deployable, (h, w), batch, seed=1)
        diffs = max_differences(deployable, session, inputs)
        lines.append(f'batch {batch}, {h}x{w}: max |onnxruntime - PyTorch| ' +
                     ', '.join(f'{k} {v:.2e}' for k, v in diffs.items()))
    return lines


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a TokenFusion / GeminiFusion segmentor to ONNX')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint of the config\'s model (loaded strictly)')
    parser.add_argument(
        '--random-weights',
        action='store_true',
        help='export the untrained model instead of a checkpoint (tests, '
        'latency measurements)')
    parser.add_argument(
        '--shape',
        nargs=2,
        type=int,
        required=True,
        metavar=('H', 'W'),
        help='input height and width (the traced shape; the only one '
        'without --dynamic)')
    parser.add_argument(
        '--dynamic',
        action='store_true',
        help='dynamic batch, height and width (MiT backbones)')
    parser.add_argument(
        '--opset',
        type=int,
        default=DEFAULT_OPSET,
        help=f'ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default '
        f'{DEFAULT_OPSET})')
    parser.add_argument(
        '--out',
        help='output file (default: the checkpoint\'s or, with '
        '--random-weights, the config\'s name with .onnx, here)')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare onnxruntime (CPU) with PyTorch at the export shape '
        'and, with --dynamic, at batch 2 and another size')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if bool(args.checkpoint) == args.random_weights:
        parser.error('give a CHECKPOINT or --random-weights (exactly one)')
    if min(args.shape) < 1:
        parser.error(f'--shape {args.shape[0]} {args.shape[1]}: positive '
                     'height and width expected')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.manual_seed(0)  # reproducible --random-weights
    try:
        model, _ = build_segmentor(args.config, args.cfg_options)
        if args.random_weights:
            meta, source = {}, 'random weights'
        else:
            meta = load_checkpoint_strict(model, args.checkpoint, args.config)
            source = osp.basename(args.checkpoint)
        # SyncBN asks torch.distributed whether to synchronise; in eval it
        # is plain batch norm with the same statistics
        model = revert_sync_batchnorm(model).eval()
        deployable = DeployableSegmentor(model)
        metadata = dict(
            config=json.dumps(osp.basename(args.config)),
            checkpoint=json.dumps(source))
        classes = classes_of(meta)
        if classes is not None:
            if len(classes) != deployable.num_classes:
                raise CheckpointMismatchError(
                    f'checkpoint {args.checkpoint}: meta names '
                    f'{len(classes)} classes, the model predicts '
                    f'{deployable.num_classes}')
            metadata['classes'] = json.dumps(classes)
        mode = (model.test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            print(f'note: the config tests with mode={mode!r}; the graph '
                  'computes whole-image inference')
        if model.data_preprocessor.test_cfg:
            print('note: the data preprocessor pads test images '
                  f'({dict(model.data_preprocessor.test_cfg)}); the graph '
                  'does not: pad the inputs before feeding them')
        out = args.out or osp.splitext(
            osp.basename(args.checkpoint or args.config))[0] + '.onnx'
        sites = export(deployable, out, args.shape, args.dynamic, args.opset,
                       metadata)
        h, w = args.shape
        print(f'wrote {out}: {INPUT_NAME} '
              f'{"(batch, " if args.dynamic else "(1, "}'
              f'{sum(deployable.in_channels)}, '
              f'{"height, width" if args.dynamic else f"{h}, {w}"}) -> '
              f'{", ".join(OUTPUT_NAMES)}; opset {args.opset}; streams '
              f'{list(deployable.stream_names)}; {deployable.num_classes} '
              f'classes; {source}')
        if sites:
            # for the shipped models: numbers of streams and channel checks
            print('the tracer took Python values read from tensors as '
                  'constants of the graph at: ' + ', '.join(sites))
        if args.verify:
            shapes = [(1, h, w)]
            if args.dynamic:
                shapes.append((2, h + 32, w + 64))
            for line in verify(deployable, out, shapes):
                print('verify: ' + line)
    except (ExportError, CheckpointMismatchError, FileNotFoundError) as error:
        sys.exit(f'pytorch2onnx: error: {error}')


if __name__ == '__main__':
    main()
