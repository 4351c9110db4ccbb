"""Run a trained multimodal segmentor on your own data."""
import copy
import difflib
import glob
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
import torch.nn as nn
from mmengine import fileio
from mmengine.config import Config
from mmengine.utils import mkdir_or_exist
from mmseg.apis import MMSegInferencer
from mmseg.registry import DATASETS, INFERENCERS, TRANSFORMS
from PIL import Image

from projects.common.checkpoint import load_state_dict_exactly
from ..datasets.multimodal_seg_dataset import IMAGE_EXTENSIONS
from ..datasets.transforms.formatting import MULTIMODAL_META_KEYS
from ..datasets.transforms.loading import BaseLoadModality
from ..models.data_preprocessor import MultiModalSegDataPreProcessor
from ..visualization.multimodal_visualizer import modality_panel
from ..visualization.token_exchange_maps import (default_layers,
                                                 token_exchange,
                                                 visualize_sample)

REPO_ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
# steps of a test pipeline that read the label, which inference has not
ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadValidatedAnnotations',
                      'LoadDepthAnnotation')

Sample = Dict[str, Union[str, np.ndarray]]


def find_config(name: str, root: str = REPO_ROOT) -> str:
    """The path of config ``name`` (file name without ``.py``) under
    ``root/configs``."""
    matches = glob.glob(
        osp.join(root, 'configs', '**', name + '.py'), recursive=True)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f'Config name {name!r} is ambiguous: {matches}')
    known = [
        osp.splitext(osp.basename(p))[0] for p in glob.glob(
            osp.join(root, 'configs', '**', '*.py'), recursive=True)
    ]
    close = difflib.get_close_matches(name, known, n=3)
    raise FileNotFoundError(
        f'{name!r} is neither a config file nor a config name under '
        f'{osp.join(root, "configs")}' +
        (f'; did you mean {close}?' if close else ''))


def pair_folders(folders: Dict[str, str],
                 extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[Sample]:
    """Samples of a dict modality -> folder: the files of every folder,
    paired by file stem, sorted by stem.

    Raises:
        FileNotFoundError: a folder does not exist, or a file has no
            partner of the same stem in another modality's folder (the error
            names the file and that folder).
        ValueError: a folder holds two files of one stem, or no file.
    """
    stems = {}
    for modality, folder in folders.items():
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'{modality} folder {folder} does not exist')
        files = {}
        for entry in sorted(fileio.list_dir_or_file(folder, list_dir=False)):
            stem, ext = osp.splitext(entry)
            if ext.lower() not in extensions:
                continue
            if stem in files:
                raise ValueError(f'{modality} folder {folder} holds two '
                                 f'files of sample {stem!r}: {files[stem]} '
                                 f'and {entry}')
            files[stem] = entry
        if not files:
            raise ValueError(f'{modality} folder {folder} holds no file with '
                             f'an extension of {tuple(extensions)}')
        stems[modality] = files
    every = sorted(set().union(*(set(f) for f in stems.values())))
    for stem in every:
        for modality, files in stems.items():
            if stem not in files:
                owner = next(m for m, f in stems.items() if stem in f)
                raise FileNotFoundError(
                    f'{osp.join(folders[owner], stems[owner][stem])} has no '
                    f'{modality} partner: no file {stem}.* in '
                    f'{folders[modality]}')
    return [{
        modality: osp.join(folders[modality], files[stem])
        for modality, files in stems.items()
    } for stem in every]


@INFERENCERS.register_module()
class MultiModalSegInferencer(MMSegInferencer):
    """``MMSegInferencer`` for the multimodal segmentors of this repository
    (TokenFusion, GeminiFusion MiT / Swin, channel exchange, the DeLiVER
    four-modality models and the early-concat / single-modality
    baselines).

    One sample is a dict modality -> file path or array, with exactly the
    modalities of the model (its data preprocessor's, in any order)::

        inferencer = MultiModalSegInferencer(CONFIG, weights=CHECKPOINT)
        result = inferencer(dict(rgb='a.png', depth='a_depth.png'))
        result['predictions']          # (H, W) class indices, the ensemble
        result['stream_predictions']   # {'rgb': (H, W), 'depth': (H, W)}

    ``inputs`` may also be a list of such dicts, or a dict modality ->
    folder, whose files are paired by stem (a file without a partner is an
    error naming it). Files go through the config's test pipeline (its
    modality loaders, so depth units and normalisation are exactly those of
    evaluation, minus the label). Arrays are taken as the loaders would
    have read them: RGB (H, W, 3) uint8 in BGR order (as OpenCV / mmcv read
    it, like ``MMSegInferencer``), depth (H, W) in the file's unit and
    dtype, 8-bit maps (H, W[, C]) uint8.

    With ``out_dir`` it writes, per sample named after its RGB (else first)
    file, or ``00000000``... for arrays: ``vis/<name>.png`` (the config's
    visualizer: RGB | modalities | prediction overlay), ``pred/<name>.png``
    (class indices), ``mask/<name>.png`` (classes in the palette's
    colours), the same per stream as ``<name>_<stream>.png``, and with
    ``fusion_maps=True`` (TokenFusion models) ``fusion/<name>.png``: the
    tokens each modality took from the others in the last fused block of
    every stage (the paper's Figure 4).

    Checks before anything runs: the checkpoint must record the modalities
    it was trained on (``meta.dataset_meta.modalities``, written by
    training and by the converters), equal to the config's, and its weights
    must fit the model exactly (strict loading). Classes and palette come
    from the checkpoint, or, for converted official checkpoints, from the
    config's test dataset.

    Args:
        model (str | Config): Config file, config name (a file name under
            ``configs/`` without ``.py``) or config.
        weights (str): The checkpoint. Required.
        classes, palette, dataset_name, device, scope: As
            ``MMSegInferencer``.
    """

    forward_kwargs: set = {'mode', 'out_dir', 'fusion_maps'}
    postprocess_kwargs: set = {
        'pred_out_dir', 'return_datasample', 'mask_out_dir', 'fusion_out_dir'
    }

    def __init__(self,
                 model: Union[str, Config],
                 weights: Optional[str] = None,
                 classes: Optional[Union[str, List]] = None,
                 palette: Optional[Union[str, List]] = None,
                 dataset_name: Optional[str] = None,
                 device: Optional[str] = None,
                 scope: Optional[str] = 'mmseg') -> None:
        if not weights:
            raise ValueError(
                'MultiModalSegInferencer needs the trained weights: '
                'weights=CHECKPOINT (a checkpoint of tools/train.py or one '
                'converted from an official release)')
        self.weights = weights
        super().__init__(
            model=model,
            weights=weights,
            classes=classes,
            palette=palette,
            dataset_name=dataset_name,
            device=device,
            scope=scope)
        self.modalities = self.model.data_preprocessor.modalities
        self.stream_names = tuple(getattr(self.model, 'stream_names', ()))

    def _load_model_from_metafile(self, model: str):
        # no model zoo downloads: a name is one of our config files
        return Config.fromfile(find_config(model)), None

    def _load_weights_to_model(self, model: nn.Module,
                               checkpoint: Optional[dict],
                               cfg: Config) -> None:
        preprocessor = model.data_preprocessor
        if not isinstance(preprocessor, MultiModalSegDataPreProcessor):
            raise TypeError(
                f'The config builds a {type(preprocessor).__name__}; '
                'MultiModalSegInferencer needs a multimodal segmentor '
                '(data_preprocessor MultiModalSegDataPreProcessor); use '
                "mmseg's MMSegInferencer for RGB-only mmseg models")
        meta = checkpoint.get('meta') or {}
        dataset_meta = meta.get('dataset_meta') or {}
        recorded = dataset_meta.get('modalities')
        if recorded is None:
            raise KeyError(
                f'Checkpoint {self.weights} records no modalities '
                '(meta.dataset_meta.modalities). Checkpoints of '
                'tools/train.py and of tools/model_converters/* record '
                'them; for an older file, add the names the model was '
                "trained on: ckpt['meta'].setdefault('dataset_meta', {})"
                f"['modalities'] = {list(preprocessor.modalities)} and save")
        if tuple(recorded) != preprocessor.modalities:
            raise ValueError(
                f'Checkpoint {self.weights} was trained on modalities '
                f'{tuple(recorded)} but the config feeds '
                f'{preprocessor.modalities}')
        load_state_dict_exactly(model, checkpoint, self.weights,
                                'the model of the config')
        if dataset_meta.get('classes'):
            model.dataset_meta = dict(
                classes=dataset_meta['classes'],
                palette=dataset_meta.get('palette'))
        else:  # converted official checkpoints: the config's dataset
            dataset = cfg.test_dataloader.dataset
            metainfo = DATASETS.get(dataset.type).METAINFO
            metainfo = {**metainfo, **(dataset.get('metainfo') or {})}
            model.dataset_meta = dict(
                classes=metainfo['classes'], palette=metainfo.get('palette'))
        if not model.dataset_meta['palette']:
            raise KeyError(f'Checkpoint {self.weights} and the config\'s '
                           'test dataset name no palette for the classes')

    def _init_pipeline(self, cfg: Config):
        """The config's test pipeline without its label loading, its image
        and modality loaders replaced by one
        ``LoadMultiModalInferencerInputs`` that runs the same modality
        loaders on the given files or arrays."""
        pipeline = [
            step
            for step in copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
            if step['type'] not in ANNOTATION_LOADERS
        ]
        types = [step['type'] for step in pipeline]
        if 'LoadImageFromFile' not in types:
            raise ValueError('The test pipeline has no LoadImageFromFile: '
                             f'{types}')

        def is_modality_loader(step):
            return issubclass(TRANSFORMS.get(step['type']), BaseLoadModality)

        loaders = [step for step in pipeline if is_modality_loader(step)]
        steps = []
        for step in pipeline:
            if step['type'] == 'LoadImageFromFile':
                steps.append(
                    dict(
                        type='LoadMultiModalInferencerInputs',
                        modalities=self.model.data_preprocessor.modalities,
                        loaders=loaders))
            elif not is_modality_loader(step):
                steps.append(step)
        pack = [s for s in steps if s['type'] == 'PackMultiModalSegInputs']
        if len(pack) != 1:
            raise ValueError('The test pipeline must end by one '
                             f'PackMultiModalSegInputs: {types}')
        # the sample name travels to the outputs' file names
        pack[0]['meta_keys'] = tuple(MULTIMODAL_META_KEYS) + ('sample_idx', )
        return mmcv.transforms.Compose(steps)

    def _inputs_to_list(self, inputs) -> List[dict]:
        """``{'name', 'inputs'}`` per sample, checked: the model's
        modalities exactly, files that exist or arrays."""
        if isinstance(inputs, dict):
            folders = [
                isinstance(v, str) and osp.isdir(v) for v in inputs.values()
            ]
            if any(folders):
                self.check_modalities(inputs, 'the folders')
                if not all(folders):
                    raise ValueError(
                        'Give every modality as a folder or none: '
                        f'{inputs}')
                items = pair_folders(inputs)
            else:
                items = [inputs]
        elif isinstance(inputs, (list, tuple)):
            items = list(inputs)
        else:
            raise TypeError(
                'inputs: expected a dict modality -> file / array / folder, '
                f'or a list of such dicts; got {type(inputs).__name__}')
        samples, names = [], set()
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise TypeError(f'Input {i} is a {type(item).__name__}, '
                                'expected a dict modality -> file / array')
            self.check_modalities(item, f'Input {i}')
            for modality, value in item.items():
                if isinstance(value, str):
                    if not osp.isfile(value):
                        raise FileNotFoundError(
                            f'Input {i}: {modality} file {value} does not '
                            'exist')
                elif not isinstance(value, np.ndarray):
                    raise TypeError(
                        f'Input {i}: {modality} is a {type(value).__name__}, '
                        'expected a file path or a numpy array')
            paths = [
                item[m] for m in self.modalities if isinstance(item[m], str)
            ]
            name = osp.splitext(osp.basename(paths[0]))[0] if paths else \
                f'{i:08d}'
            if name in names:  # e.g. the same file name in two folders
                name = f'{name}_{i}'
            names.add(name)
            samples.append(dict(name=name, inputs=dict(item)))
        return samples

    def check_modalities(self, item: dict, where: str) -> None:
        missing = [m for m in self.modalities if m not in item]
        extra = [m for m in item if m not in self.modalities]
        if missing or extra:
            raise KeyError(
                f'{where}: the model takes the modalities {self.modalities}; '
                + (f'missing {missing}' if missing else '') +
                ('; ' if missing and extra else '') +
                (f'unexpected {extra}' if extra else '') +
                ' (to evaluate without a modality, see '
                'tools/analysis_tools/missing_modality.py)')

    def __call__(self,
                 inputs,
                 return_datasamples: bool = False,
                 batch_size: int = 1,
                 return_vis: bool = False,
                 show: bool = False,
                 wait_time: int = 0,
                 out_dir: str = '',
                 img_out_dir: str = 'vis',
                 pred_out_dir: str = 'pred',
                 mask_out_dir: str = 'mask',
                 fusion_out_dir: str = 'fusion',
                 fusion_maps: bool = False,
                 **kwargs) -> dict:
        """As ``MMSegInferencer.__call__``, plus ``mask_out_dir`` (colour
        masks), ``fusion_maps`` (draw TokenFusion's exchanged tokens into
        ``fusion_out_dir``; they are also returned in the data samples'
        ``fusion_map`` metainfo)."""
        if fusion_maps:
            token_exchange(self.model.backbone)  # fails early, naming why
        return super().__call__(
            inputs,
            return_datasamples=return_datasamples,
            batch_size=batch_size,
            return_vis=return_vis,
            show=show,
            wait_time=wait_time,
            out_dir=out_dir,
            img_out_dir=img_out_dir,
            pred_out_dir=pred_out_dir,
            mask_out_dir=osp.join(out_dir, mask_out_dir) if out_dir else '',
            fusion_out_dir=osp.join(out_dir, fusion_out_dir)
            if out_dir else '',
            fusion_maps=fusion_maps,
            **kwargs)

    @torch.no_grad()
    def forward(self, inputs: dict, fusion_maps: bool = False, **kwargs):
        preds = self.model.test_step(inputs)
        if fusion_maps:
            # One more whole-image backbone pass per sample: the model may
            # infer by sliding windows, the map needs the whole token grid.
            layers = default_layers(
                token_exchange(self.model.backbone).block_names)
            for i, pred in enumerate(preds):
                figure, fractions = visualize_sample(
                    self.model,
                    dict(
                        inputs=inputs['inputs'][i],
                        data_samples=inputs['data_samples'][i]),
                    layers,
                    name=pred.metainfo['sample_idx'])
                pred.set_metainfo(dict(fusion_map=figure, exchanged=fractions))
        return preds

    def visualize(self,
                  inputs: list,
                  preds: list,
                  return_vis: bool = False,
                  show: bool = False,
                  wait_time: int = 0,
                  img_out_dir: str = '',
                  opacity: float = 0.8,
                  with_labels: Optional[bool] = True) -> Optional[list]:
        """The config's visualizer on every sample: its RGB (else its first
        modality, depth colourised) with the prediction drawn over it."""
        if not show and not img_out_dir and not return_vis:
            return None
        meta = self.model.dataset_meta
        self.visualizer.set_dataset_meta(meta['classes'], meta['palette'])
        self.visualizer.alpha = opacity
        results = []
        for sample, pred in zip(inputs, preds):
            first = 'rgb' if 'rgb' in self.modalities else self.modalities[0]
            image = modality_panel(first, sample['inputs'][first])
            name = sample['name']
            self.visualizer.add_datasample(
                name,
                image,
                pred,
                show=show,
                wait_time=wait_time,
                draw_gt=False,
                draw_pred=True,
                out_file=osp.join(img_out_dir, name +
                                  '.png') if img_out_dir else None,
                with_labels=with_labels)
            if return_vis:
                results.append(self.visualizer.get_image())
        return results if return_vis else None

    def postprocess(self,
                    preds: list,
                    visualization: Optional[list],
                    return_datasample: bool = False,
                    pred_out_dir: str = '',
                    mask_out_dir: str = '',
                    fusion_out_dir: str = '') -> Union[dict, list]:
        """Write the outputs, then return ``predictions`` (ensemble class
        maps, as ``MMSegInferencer``), ``stream_predictions`` ({stream:
        class map} per sample) and ``visualization``; or the data samples
        with ``return_datasample``. One sample: no list around them."""
        palette = np.asarray(self.model.dataset_meta['palette'], np.uint8)
        results = dict(predictions=[], stream_predictions=[], visualization=[])
        for i, pred in enumerate(preds):
            name = pred.metainfo['sample_idx']
            maps = {'': pred.pred_sem_seg.data[0].cpu().numpy()}
            for stream in self.stream_names:
                maps[f'_{stream}'] = pred.get(
                    f'pred_sem_seg_{stream}').data[0].cpu().numpy()
            for folder, draw in ((pred_out_dir, lambda m: m.astype(np.uint8)),
                                 (mask_out_dir, lambda m: palette[m])):
                if folder:
                    mkdir_or_exist(folder)
                    for suffix, labels in maps.items():
                        Image.fromarray(draw(labels)).save(
                            osp.join(folder, f'{name}{suffix}.png'))
            if fusion_out_dir and 'fusion_map' in pred:
                mkdir_or_exist(fusion_out_dir)
                Image.fromarray(pred.fusion_map).save(
                    osp.join(fusion_out_dir, f'{name}.png'))
            results['predictions'].append(maps.pop(''))
            results['stream_predictions'].append(
                {s: maps[f'_{s}']
                 for s in self.stream_names})
            if visualization is not None:
                results['visualization'].append(visualization[i])
        if return_datasample:
            return preds[0] if len(preds) == 1 else preds
        if len(preds) == 1:
            results = {k: v[0] if v else v for k, v in results.items()}
        return results
