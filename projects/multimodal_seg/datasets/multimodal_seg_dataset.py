"""Base dataset for aligned multimodal (RGB + depth / HHA / ...) samples."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmengine.fileio import list_from_file
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.npy', '.tif', '.tiff')

# File layouts of the public RGB-D releases. Every value can be overridden by
# the dataset arguments of the same name.
#   canonical:   what tools/dataset_converters/*.py write (see docs/data.md).
#   tokenfusion: yikaiw/TokenFusion NYUDv2 (light-weight-refinenet + depth):
#                rgb/ masks/ depth/ PNGs, TAB-separated list columns
#                "rgb mask depth", labels 0..39 and 255.
#   cmx:         huaaaliu/RGBX_Semantic_Segmentation: RGB/*.jpg HHA/*.jpg
#                Depth/*.png Label/*.png, labels 1..40 with 0 unlabelled.
#   dformer:     VCIP-RGBD/DFormer (also used by GeminiFusion for SUN RGB-D):
#                RGB/*.jpg Depth/*.png (8-bit grey, load with
#                LoadDepthFromFile(dtypes=('uint8',))) Label/*.png, list
#                lines "RGB/<name>.jpg ...", labels 1..K with 0 unlabelled.
LAYOUTS: Dict[str, dict] = dict(
    canonical=dict(
        data_prefix=dict(img_path='rgb', seg_map_path='label'),
        modality_prefix=dict(depth='depth', hha='hha'),
        img_suffix='.png',
        seg_map_suffix='.png',
        modality_suffix=dict(depth='.png', hha='.png'),
        reduce_zero_label=False),
    tokenfusion=dict(
        data_prefix=dict(img_path='rgb', seg_map_path='masks'),
        modality_prefix=dict(depth='depth'),
        img_suffix='.png',
        seg_map_suffix='.png',
        modality_suffix=dict(depth='.png'),
        ann_columns=('rgb', 'label', 'depth'),
        reduce_zero_label=False),
    cmx=dict(
        data_prefix=dict(img_path='RGB', seg_map_path='Label'),
        modality_prefix=dict(depth='Depth', hha='HHA'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        modality_suffix=dict(depth='.png', hha='.jpg'),
        reduce_zero_label=True),
    dformer=dict(
        data_prefix=dict(img_path='RGB', seg_map_path='Label'),
        modality_prefix=dict(depth='Depth'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        modality_suffix=dict(depth='.png'),
        reduce_zero_label=True),
)


@DATASETS.register_module()
class MultiModalSegDataset(BaseSegDataset):
    """Semantic segmentation dataset whose samples hold several aligned
    modalities.

    Files of sample ``name`` are found as::

        data_root/<data_prefix.img_path>/<name><img_suffix>       rgb
        data_root/<modality_prefix[m]>/<name><modality_suffix[m]> modality m
        data_root/<data_prefix.seg_map_path>/<name><seg_map_suffix> label

    ``ann_file`` lists the samples of a split, one per line. By default the
    first whitespace-separated token of a line is the sample: a bare name, or
    a path whose file stem is taken (``RGB/0001.jpg`` -> ``0001``). With
    ``ann_columns`` the tokens are paths relative to ``data_root``, one per
    named column (``'rgb'``, ``'label'`` or a modality name).

    The dataset's ``metainfo`` holds ``modalities`` besides the classes and
    palette. Each data info carries ``modalities`` (the ordered modality
    names the pipeline must load and pack), ``modality_paths`` (paths of
    the non-RGB modalities) and ``num_classes`` (for the label check of
    ``LoadValidatedAnnotations``).

    Args:
        modalities (Sequence[str]): Modalities of a sample, in the order in
            which they are stacked into the network input. ``'rgb'`` is the
            colour image (``img_path``); any other name needs a
            ``modality_prefix`` entry. Defaults to ``('rgb', 'depth')``.
        layout (str): One of :data:`LAYOUTS`; fills the path arguments that
            are not given explicitly. Defaults to ``'canonical'``.
        modality_prefix (dict, optional): Folder of each non-RGB modality.
        modality_suffix (dict, optional): File suffix of each modality.
        ann_columns (Sequence[str], optional): Column meaning of the list
            file, see above.
        check_files (bool): Check at start-up that every file of every
            sample exists, and fail naming the missing ones. Defaults to
            True.
        **kwargs: Passed to :class:`mmseg.datasets.BaseSegDataset`.
    """

    def __init__(self,
                 modalities: Sequence[str] = ('rgb', 'depth'),
                 layout: str = 'canonical',
                 modality_prefix: Optional[dict] = None,
                 modality_suffix: Optional[dict] = None,
                 ann_columns: Optional[Sequence[str]] = None,
                 check_files: bool = True,
                 **kwargs) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f'Unknown layout {layout!r}; expected one of '
                             f'{sorted(LAYOUTS)}')
        if isinstance(modalities, str) or not modalities:
            raise ValueError('`modalities` must be a non-empty sequence of '
                             f'names, got {modalities!r}')
        if len(set(modalities)) != len(modalities):
            raise ValueError(f'Duplicate names in modalities={modalities}')
        preset = LAYOUTS[layout]
        self.modalities = tuple(modalities)
        self.modality_prefix = dict(modality_prefix if modality_prefix
                                    is not None else preset['modality_prefix'])
        self.modality_suffix = dict(modality_suffix if modality_suffix
                                    is not None else preset['modality_suffix'])
        self.ann_columns = tuple(
            ann_columns if ann_columns is not None else preset.
            get('ann_columns', ()))
        self.check_files = check_files
        for name in self.modalities:
            if name == 'rgb':
                continue
            if name not in self.modality_prefix:
                raise KeyError(
                    f'Modality {name!r} has no folder: add it to '
                    f'modality_prefix (given: {self.modality_prefix})')
            self.modality_suffix.setdefault(name, '.png')
        for key in ('data_prefix', 'img_suffix', 'seg_map_suffix',
                    'reduce_zero_label'):
            kwargs.setdefault(key, preset[key])
        super().__init__(**kwargs)
        # The runner saves the training set's metainfo in every checkpoint
        # (meta.dataset_meta): the inferencer checks a checkpoint's
        # modalities against its config with it.
        self._metainfo['modalities'] = self.modalities

    def _split_lines(self) -> List[str]:
        lines = [
            line.strip() for line in list_from_file(
                self.ann_file, backend_args=self.backend_args)
        ]
        lines = [line for line in lines if line]
        if not lines:
            raise ValueError(f'Split file {self.ann_file} lists no samples')
        return lines

    def _sample_from_line(self, line: str, line_no: int) -> dict:
        """Resolve the file paths of one list-file line."""
        tokens = line.split()
        img_dir = self.data_prefix.get('img_path', '')
        seg_dir = self.data_prefix.get('seg_map_path', '')
        if self.ann_columns:
            if len(tokens) < len(self.ann_columns):
                raise ValueError(
                    f'{self.ann_file}:{line_no}: expected '
                    f'{len(self.ann_columns)} columns '
                    f'{self.ann_columns}, got {len(tokens)}: {line!r}')
            paths = {
                column: osp.join(self.data_root or '', token)
                for column, token in zip(self.ann_columns, tokens)
            }
            name = osp.splitext(osp.basename(tokens[0]))[0]
        else:
            name = tokens[0]
            if osp.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                name = osp.splitext(osp.basename(name))[0]
            paths = {}
        paths.setdefault('rgb', osp.join(img_dir, name + self.img_suffix))
        paths.setdefault('label', osp.join(seg_dir,
                                           name + self.seg_map_suffix))
        for modality in self.modalities:
            if modality != 'rgb':
                paths.setdefault(
                    modality,
                    osp.join(self.data_root or '',
                             self.modality_prefix[modality],
                             name + self.modality_suffix[modality]))
        return dict(
            sample_idx=name,
            img_path=paths['rgb'],
            seg_map_path=paths['label'],
            modalities=self.modalities,
            modality_paths={
                m: paths[m]
                for m in self.modalities if m != 'rgb'
            },
            label_map=self.label_map,
            reduce_zero_label=self.reduce_zero_label,
            num_classes=len(self.metainfo['classes']),
            seg_fields=[])

    def load_data_list(self) -> List[dict]:
        if not self.ann_file:
            raise ValueError(
                f'{type(self).__name__} needs an ann_file (split list)')
        data_list = [
            self._sample_from_line(line, i + 1)
            for i, line in enumerate(self._split_lines())
        ]
        if self.check_files:
            self._check_files(data_list)
        return data_list

    def _check_files(self, data_list: List[dict]) -> None:
        missing = []
        for info in data_list:
            files = dict(rgb=info['img_path'], **info['modality_paths'])
            files['label'] = info['seg_map_path']
            for kind, path in files.items():
                if not osp.isfile(path):
                    missing.append(f'sample {info["sample_idx"]!r}: '
                                   f'missing {kind} file {path}')
        if missing:
            shown = '\n  '.join(missing[:5])
            more = f'\n  ... and {len(missing) - 5} more' \
                if len(missing) > 5 else ''
            raise FileNotFoundError(
                f'{len(missing)} file(s) listed by {self.ann_file} do not '
                f'exist (data_root={self.data_root}):\n  {shown}{more}')
