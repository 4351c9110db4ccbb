"""Convert the official TokenFusion image-translation checkpoints
(yikaiw/TokenFusion, ``image2image_translation``) for this repository.

The reference saves ``checkpoint-gen-{epoch}.pkl`` (the ``gen_b2``
generator, 1,143 tensors) and ``checkpoint-dis-{epoch}.pkl`` (the
``dis_b2`` discriminator, 554 tensors): plain ``nn.DataParallel`` state
dicts (every key starts with ``module.``) whose storages were saved from
the GPU. Both become one ``{'state_dict', 'meta'}`` file whose keys are
those of a :class:`MultiStreamTranslator` (``generator.*``,
``discriminator.*``)::

    python tools/model_converters/tokenfusion_translation2mmseg.py \\
        checkpoint-gen-399.pkl --discriminator checkpoint-dis-399.pkl \\
        checkpoints/tokenfusion_translation_taskonomy.pth

Without ``--discriminator`` the file holds the ``generator.*`` keys only
(what testing and inference use); they load strictly into the translator's
``generator`` once the ``generator.`` prefix is removed.

Name mapping (reference names without ``module.`` -> ours; ``{s}`` is the
0-based encoder stage, ``{j}`` the decoder stage, ``{m}`` the modality;
"row m": the tensor is row m of a stacked one):

* ``patch_embed_enc.{s}.proj.module.*`` -> ``encoder.patch_embed{s+1}.proj.*``
  and ``patch_embed_enc.{s}.norm.lrnorm_{m}.*`` ->
  ``encoder.patch_embed{s+1}.norm.*`` row m;
* ``block_enc.{s}.{b}.attn.{q,kv,proj,sr}.module.*``,
  ``.mlp.{fc1,fc2}.module.*`` and ``.mlp.dwconv.dwconv.module.*`` ->
  ``encoder.block{s+1}.{b}.attn.*``, ``.mlp.*`` and ``.mlp.dwconv.*``; the
  blocks' ``{norm1,norm2,attn.norm}.lrnorm_{m}.*`` -> the same names, row m;
* ``norm_enc.{s}.lrnorm_{m}.*`` -> ``encoder.norm{s+1}.*`` row m;
* ``score_predictor.{s}.score_nets.{m}.{0,1,3,5,7}.*`` ->
  ``encoder.fusion_layers.0.score_predictors.{s}.{norm,fc1,fc2,fc3,fc4}.*``
  row m (one predictor per stage, used in the stage's last block);
* ``patch_embed_dec.{j}.proj.module.*`` -> ``upsamples.{j}.proj.*`` for
  j < 4, and ``patch_embed_dec.4.proj.module.*`` -> ``final_upsample.proj.*``;
* ``block_dec.{j}.{b}.*`` -> ``decoder.{j}.{b}.*`` (as the encoder's blocks)
  and ``norm_dec.{j}.lrnorm_{m}.*`` -> ``decoder_norms.{j}.*`` row m;
* ``project.module.*`` -> ``project.*``; ``alpha`` -> ``alpha``.

The discriminator has the same encoder names (without score predictors);
its ``project.module.*`` (1x1 conv to one channel) is our ``head.*``.
Per-modality tensors (``lrnorm_{m}``, ``score_nets.{m}``) are stacked with
row m = modality m, the reference's input order.

Dropped on purpose: every decoder upsampler of the reference
(``PatchUpsample``) owns a per-modality LayerNorm,
``patch_embed_dec.{j}.norm.lrnorm_{m}.{weight,bias}`` (j = 0..4: 20
tensors for two modalities), that its forward never applies; our
upsampler has none. Any other key without a place in the model, any key
the model needs and the file lacks, and any tensor of another shape is an
error naming the reference key: the architecture (modalities, widths,
depths, channels) is read from the file, the matching model is built and
the file must hold exactly its tensors.
"""
import argparse
import os
import os.path as osp
import re
import sys
from collections import Counter, OrderedDict
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch
from torch import Tensor, nn

from projects.common.checkpoint import (CheckpointMismatchError, describe_keys,
                                        load_state_dict_exactly,
                                        unwrap_state_dict)
from projects.multimodal_translation.models.fused_mit_gan import (
    DECODER_DEPTHS, FusedMiTDiscriminator, FusedMiTGenerator)
from tools.model_converters.reference_keys import _PREDICTOR_LAYERS, stack_rows
from tools.model_converters.tokenfusion2mmseg import modality_names

TOOL = 'tokenfusion_translation2mmseg.py'
GENERATOR, DISCRIMINATOR = 'generator', 'discriminator'
# the reference's default task (main.py ``-i 2 7 0``): the sources in their
# stream order, and the target
DEFAULT_SOURCES = {2: ('reshading', 'edge_texture')}
DEFAULT_TARGET = 'rgb'
# the generator's last upsampler (to the input size) follows the decoder's
FINAL_UPSAMPLER = len(DECODER_DEPTHS)

# --------------------------------------------------------------------------
# Names: one table of (reference, ours) templates, read both ways
# --------------------------------------------------------------------------

# what a ``{field}`` of a template matches
_FIELDS = {
    'stage': r'\d+',  # 0-based encoder stage
    'stage1': r'\d+',  # our 1-based stage (stage + 1)
    'block': r'\d+',
    'up': r'\d+',  # decoder stage / upsampler
    'm': r'\d+',  # modality
    'kind': r'weight|bias',
    'shared': r'attn\.(?:q|kv|proj|sr)|mlp\.(?:fc1|fc2)',
    'norm': r'norm1|norm2|attn\.norm',
    'layer': r'[01357]',  # index in PredictorLG.score_nets[m]
    'fc': '|'.join(_PREDICTOR_LAYERS.values()),
}
_LAYER_INDEX = {name: index for index, name in _PREDICTOR_LAYERS.items()}


class NameRule(NamedTuple):
    """A reference name template and ours; ``{m}`` in the reference
    template makes the tensor row m of ours."""
    reference: str
    ours: str

    @property
    def per_modality(self) -> bool:
        return '{m}' in self.reference


def _compile(template: str) -> 're.Pattern':
    parts = re.split(r'\{(\w+)\}', template)
    return re.compile(''.join(
        re.escape(part) if i % 2 == 0 else f'(?P<{part}>{_FIELDS[part]})'
        for i, part in enumerate(parts)))


def _ours_fields(fields: Dict[str, str]) -> Dict[str, str]:
    if 'stage' in fields:
        fields['stage1'] = str(int(fields['stage']) + 1)
    if 'layer' in fields:
        fields['fc'] = _PREDICTOR_LAYERS[fields['layer']]
    return fields


def _reference_fields(fields: Dict[str, str]) -> Dict[str, str]:
    if 'stage1' in fields:
        fields['stage'] = str(int(fields['stage1']) - 1)
    if 'fc' in fields:
        fields['layer'] = _LAYER_INDEX[fields['fc']]
    return fields


_ENCODER = (
    NameRule('patch_embed_enc.{stage}.proj.module.{kind}',
             'encoder.patch_embed{stage1}.proj.{kind}'),
    NameRule('patch_embed_enc.{stage}.norm.lrnorm_{m}.{kind}',
             'encoder.patch_embed{stage1}.norm.{kind}'),
    NameRule('block_enc.{stage}.{block}.{shared}.module.{kind}',
             'encoder.block{stage1}.{block}.{shared}.{kind}'),
    # Mix-FFN's depthwise conv (wrapped in ModuleParallel here, unlike in
    # the segmentation reference)
    NameRule('block_enc.{stage}.{block}.mlp.dwconv.dwconv.module.{kind}',
             'encoder.block{stage1}.{block}.mlp.dwconv.{kind}'),
    NameRule('block_enc.{stage}.{block}.{norm}.lrnorm_{m}.{kind}',
             'encoder.block{stage1}.{block}.{norm}.{kind}'),
    NameRule('norm_enc.{stage}.lrnorm_{m}.{kind}',
             'encoder.norm{stage1}.{kind}'),
)
GENERATOR_NAMES: Tuple[NameRule, ...] = _ENCODER + (
    # one PredictorLG per encoder stage (used in its last block)
    NameRule('score_predictor.{stage}.score_nets.{m}.{layer}.{kind}',
             'encoder.fusion_layers.0.score_predictors.{stage}.{fc}.{kind}'),
    NameRule(f'patch_embed_dec.{FINAL_UPSAMPLER}.proj.module.{{kind}}',
             'final_upsample.proj.{kind}'),
    NameRule('patch_embed_dec.{up}.proj.module.{kind}',
             'upsamples.{up}.proj.{kind}'),
    NameRule('block_dec.{up}.{block}.{shared}.module.{kind}',
             'decoder.{up}.{block}.{shared}.{kind}'),
    NameRule('block_dec.{up}.{block}.mlp.dwconv.dwconv.module.{kind}',
             'decoder.{up}.{block}.mlp.dwconv.{kind}'),
    NameRule('block_dec.{up}.{block}.{norm}.lrnorm_{m}.{kind}',
             'decoder.{up}.{block}.{norm}.{kind}'),
    NameRule('norm_dec.{up}.lrnorm_{m}.{kind}', 'decoder_norms.{up}.{kind}'),
    NameRule('project.module.{kind}', 'project.{kind}'),
    NameRule('alpha', 'alpha'),
)
DISCRIMINATOR_NAMES: Tuple[NameRule, ...] = _ENCODER + (NameRule(
    'project.module.{kind}', 'head.{kind}'), )
# The upsamplers' LayerNorms, owned by the reference and never applied.
UNUSED_UPSAMPLER_NORM = 'patch_embed_dec.{up}.norm.lrnorm_{m}.{kind}'
_UNUSED = _compile(UNUSED_UPSAMPLER_NORM)

_COMPILED: Dict[NameRule, Tuple['re.Pattern', 're.Pattern']] = {}


def _patterns(rule: NameRule) -> Tuple['re.Pattern', 're.Pattern']:
    if rule not in _COMPILED:
        _COMPILED[rule] = (_compile(rule.reference), _compile(rule.ours))
    return _COMPILED[rule]


def to_ours(key: str,
            rules: Sequence[NameRule]) -> Optional[Tuple[str, Optional[int]]]:
    """Reference name (without ``module.``) -> (our name, modality row or
    None); None for a name of no rule."""
    for rule in rules:
        match = _patterns(rule)[0].fullmatch(key)
        if match:
            fields = _ours_fields(match.groupdict())
            row = int(fields['m']) if rule.per_modality else None
            return rule.ours.format(**fields), row
    return None


def to_reference(key: str, rules: Sequence[NameRule],
                 num_modalities: int) -> Optional[Tuple[List[str], bool]]:
    """Our name -> the reference names it is made of (one per modality,
    in row order, for a stacked tensor) and whether it is stacked; None
    for a name of no rule."""
    for rule in rules:
        match = _patterns(rule)[1].fullmatch(key)
        if match:
            fields = _reference_fields(match.groupdict())
            if not rule.per_modality:
                return [rule.reference.format(**fields)], False
            return [
                rule.reference.format(**fields, m=m)
                for m in range(num_modalities)
            ], True
    return None


# --------------------------------------------------------------------------
# One network: architecture, exact check, conversion
# --------------------------------------------------------------------------


def _required(state: Mapping[str, Tensor], key: str, why: str) -> Tensor:
    if key not in state:
        raise CheckpointMismatchError(f'missing {key} (it gives the {why})')
    return state[key]


def _depths(state: Mapping[str, Tensor], prefix: str, stages: int):
    """Blocks of every stage: one more than the highest block index of the
    names ``{prefix}{stage}.{block}.*`` (a block in between that the file
    lacks is then reported as missing)."""
    pattern = re.compile(re.escape(prefix) + r'(\d+)\.(\d+)\.')
    depths = [0] * stages
    for match in map(pattern.match, state):
        stage, block = map(int, match.groups()) if match else (stages, 0)
        if stage < stages:
            depths[stage] = max(depths[stage], block + 1)
    empty = [f'{prefix}{s}.*' for s, depth in enumerate(depths) if not depth]
    if empty:
        raise CheckpointMismatchError(f'no blocks in {", ".join(empty)}')
    return depths


def num_modalities_of(state: Mapping[str, Tensor],
                      rules: Sequence[NameRule]) -> int:
    """M: the number of modality rows most per-modality tensors have (a
    tensor with fewer or more is reported by the exact check)."""
    rows: Dict[str, set] = {}
    for key in state:
        mapped = to_ours(key, rules)
        if mapped is not None and mapped[1] is not None:
            rows.setdefault(mapped[0], set()).add(mapped[1])
    if not rows:
        raise CheckpointMismatchError(
            'no per-modality LayerNorm (lrnorm_<m>) keys: not a TokenFusion '
            'translation checkpoint')
    return Counter(len(r) for r in rows.values()).most_common(1)[0][0]


def build_generator(state: Mapping[str, Tensor]) -> Tuple[nn.Module, dict]:
    """The generator the reference state (without ``module.``) describes,
    and its arguments."""
    embed = _required(state, 'patch_embed_enc.0.proj.module.weight',
                      'input channels and the width')
    project = _required(state, 'project.module.weight', 'output channels')
    config = dict(
        num_modalities=num_modalities_of(state, GENERATOR_NAMES),
        in_channels=embed.shape[1],
        out_channels=project.shape[0],
        embed_dims=embed.shape[0],
        encoder_depths=_depths(state, 'block_enc.', 5),
        decoder_depths=_depths(state, 'block_dec.', len(DECODER_DEPTHS)))
    return FusedMiTGenerator(**config), config


def build_discriminator(state: Mapping[str, Tensor]) -> Tuple[nn.Module, dict]:
    """The discriminator the reference state describes, and its
    arguments."""
    embed = _required(state, 'patch_embed_enc.0.proj.module.weight',
                      'input channels and the width')
    config = dict(
        num_streams=num_modalities_of(state, DISCRIMINATOR_NAMES),
        in_channels=embed.shape[1],
        embed_dims=embed.shape[0],
        depths=_depths(state, 'block_enc.', 5))
    return FusedMiTDiscriminator(**config), config


def expected_reference(
        model: nn.Module, rules: Sequence[NameRule], num_modalities: int,
        unused_norms: bool) -> 'OrderedDict[str, Tuple[int, ...]]':
    """The reference names and shapes of every tensor of ``model`` (a
    stacked tensor's rows one by one), and with ``unused_norms`` the
    upsamplers' unused LayerNorms."""
    expected: 'OrderedDict[str, Tuple[int, ...]]' = OrderedDict()
    own = model.state_dict()
    for key, value in own.items():
        names = to_reference(key, rules, num_modalities)
        if names is None:  # the table misses a tensor of the model
            raise RuntimeError(f'{TOOL} has no reference name for {key}')
        names, stacked = names
        shape = tuple(value.shape)
        for name in names:
            expected[name] = shape[1:] if stacked else shape
    if unused_norms:
        upsamplers = [f'upsamples.{j}' for j in range(FINAL_UPSAMPLER)]
        upsamplers.append('final_upsample')
        for j, upsampler in enumerate(upsamplers):
            channels = tuple(own[f'{upsampler}.proj.bias'].shape)
            for m in range(num_modalities):
                for kind in ('weight', 'bias'):
                    expected[UNUSED_UPSAMPLER_NORM.format(
                        up=j, m=m, kind=kind)] = channels
    return expected


def check_exact(state: Mapping[str, Tensor],
                expected: Mapping[str, Tuple[int, ...]]) -> None:
    """The reference state holds exactly the ``expected`` names and
    shapes; otherwise a :class:`CheckpointMismatchError` naming every
    missing, unknown and misshapen key."""
    missing = [k for k in expected if k not in state]
    unknown = [k for k in state if k not in expected]
    shapes = [
        f'{k}: {tuple(state[k].shape)}, expected {expected[k]}'
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    problems = []
    if unknown:
        problems.append(f'{len(unknown)} key(s) without a place in the model: '
                        f'{describe_keys(unknown)}')
    if missing:
        problems.append(f'{len(missing)} key(s) missing: '
                        f'{describe_keys(missing)}')
    if shapes:
        more = f'; ... ({len(shapes)} in all)' if len(shapes) > 10 else ''
        problems.append(f'{len(shapes)} key(s) of another shape: '
                        f'{"; ".join(shapes[:10])}{more}')
    if problems:
        raise CheckpointMismatchError('; '.join(problems))


def convert_network(state: Mapping[str, Tensor],
                    part: str) -> Tuple['OrderedDict[str, Tensor]', dict]:
    """Convert the reference ``generator`` or ``discriminator`` state
    (``module.`` prefix optional) exactly.

    Returns:
        tuple: The state dict of our network (keys relative to it) and a
        summary: ``config`` (its arguments), ``num_tensors``
        (``reference``, ``dropped``, ``converted``), ``num_parameters``,
        ``dropped`` (the reference names left out).

    Raises:
        CheckpointMismatchError: A key without a place in the model, a
            missing key or a tensor of another shape (all are listed, by
            their reference names).
    """
    state = unwrap_state_dict(state, part, prefix='')
    rules = GENERATOR_NAMES if part == GENERATOR else DISCRIMINATOR_NAMES
    build = build_generator if part == GENERATOR else build_discriminator
    model, config = build(state)
    m = config.get('num_modalities', config.get('num_streams'))
    check_exact(state, expected_reference(model, rules, m, part == GENERATOR))

    out: 'OrderedDict[str, object]' = OrderedDict()
    dropped = []
    for key, value in state.items():
        if part == GENERATOR and _UNUSED.fullmatch(key):
            dropped.append(key)
            continue
        name, row = to_ours(key, rules)
        if row is None:
            out[name] = value
        else:
            out.setdefault(name, {})[row] = value
    stack_rows(out, {k: v for k, v in out.items() if isinstance(v, dict)})
    # in the model's order; the model must take it strictly
    converted = OrderedDict((k, out[k]) for k in model.state_dict())
    load_state_dict_exactly(model, converted, part, type(model).__name__)
    info = dict(
        config=dict(type=type(model).__name__, **config),
        num_tensors=dict(
            reference=len(state),
            dropped=len(dropped),
            converted=len(converted)),
        num_parameters=sum(p.numel() for p in model.parameters()),
        dropped=dropped)
    return converted, info


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


class TranslationCheckpointError(ValueError):
    """A file that does not convert; the message names the file."""


def load_reference(path: str) -> Dict[str, Tensor]:
    """A reference ``.pkl``: the storages were saved from the GPU, so they
    are mapped to the CPU; the file holds tensors only."""
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001  (what torch.load raises varies)
        raise TypeError(f'not a checkpoint torch.load reads '
                        f'({type(exc).__name__}: {exc})') from exc
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f'expected a state dict, got '
                        f'{type(checkpoint).__name__}')
    return checkpoint


def convert_files(generator: str,
                  dst: str,
                  discriminator: Optional[str] = None,
                  modalities: Optional[Sequence[str]] = None,
                  target: Optional[str] = None) -> dict:
    """Convert the reference files into ``dst``; returns the meta.

    Raises:
        TranslationCheckpointError: A file that is no checkpoint or not
            exactly the reference's layout (naming the file and the keys),
            or networks of different stream counts. Nothing is written
            then.
    """
    sources = {GENERATOR: generator}
    if discriminator is not None:
        sources[DISCRIMINATOR] = discriminator
    state: 'OrderedDict[str, Tensor]' = OrderedDict()
    summary = {}
    for part, path in sources.items():
        try:
            converted, info = convert_network(load_reference(path), part)
        except Exception as exc:  # noqa: BLE001  (name the file)
            raise TranslationCheckpointError(
                f'{path} ({part}): {type(exc).__name__}: {exc}') from exc
        state.update((f'{part}.{k}', v) for k, v in converted.items())
        summary[part] = info
    streams = summary[GENERATOR]['config']['num_modalities']
    if DISCRIMINATOR in summary and \
            summary[DISCRIMINATOR]['config']['num_streams'] != streams:
        raise TranslationCheckpointError(
            f'{discriminator} (discriminator) has '
            f'{summary[DISCRIMINATOR]["config"]["num_streams"]} streams, '
            f'{generator} (generator) {streams}')
    try:
        names = modality_names(streams, modalities, DEFAULT_SOURCES)
    except ValueError as exc:
        raise TranslationCheckpointError(f'{generator}: {exc}') from exc

    alpha = state['generator.alpha']
    counts = {part: info['num_tensors'] for part, info in summary.items()}
    counts['total'] = len(state)
    meta = dict(
        converter=f'tools/model_converters/{TOOL}',
        converted_from={
            part: osp.abspath(p)
            for part, p in sources.items()
        },
        parts=list(sources),
        model={
            part: info['config']
            for part, info in summary.items()
        },
        num_tensors=counts,
        num_parameters={
            part: info['num_parameters']
            for part, info in summary.items()
        },
        dropped=[f'module.{k}' for k in summary[GENERATOR]['dropped']],
        alpha=[round(float(a), 6) for a in alpha],
        ensemble_weights=[round(float(w), 6) for w in alpha.softmax(0)],
        dataset_meta=dict(
            modalities=list(names),
            sources=list(names),
            target=target or DEFAULT_TARGET))
    if osp.dirname(dst):
        os.makedirs(osp.dirname(dst), exist_ok=True)
    torch.save(dict(state_dict=state, meta=meta), dst)
    return meta


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert the official TokenFusion image-translation '
        'checkpoints (checkpoint-gen/dis-*.pkl) to a MultiStreamTranslator '
        'checkpoint')
    parser.add_argument(
        'generator', help='reference generator (checkpoint-gen-*.pkl)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--discriminator',
        help='reference discriminator (checkpoint-dis-*.pkl); without it '
        'the output holds the generator only')
    parser.add_argument(
        '--modalities',
        nargs='+',
        help='source modality names in stream order (the reference\'s '
        'input order), recorded in the meta; default for 2 streams: ' +
        ' '.join(DEFAULT_SOURCES[2]))
    parser.add_argument(
        '--target',
        help=f'target modality name recorded in the meta (default: '
        f'{DEFAULT_TARGET})')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    try:
        meta = convert_files(args.generator, args.dst, args.discriminator,
                             args.modalities, args.target)
    except TranslationCheckpointError as exc:
        raise SystemExit(f'{TOOL}: cannot convert {exc}')
    print(f'Converted {" + ".join(meta["converted_from"].values())} -> '
          f'{args.dst}')
    for part in meta['parts']:
        print(f'  {part}: {meta["model"][part]}, '
              f'{meta["num_parameters"][part] / 1e6:.1f} M parameters, '
              f'tensors {meta["num_tensors"][part]}')
    print(f'  dropped (never applied by the reference): '
          f'{len(meta["dropped"])} upsampler LayerNorm tensors')
    print(f'  sources: {meta["dataset_meta"]["sources"]} -> '
          f'{meta["dataset_meta"]["target"]}')
    print(f'  ensemble weights: {meta["ensemble_weights"]}')
    return meta


if __name__ == '__main__':
    main()
