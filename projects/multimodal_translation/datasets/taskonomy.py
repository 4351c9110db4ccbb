"""Taskonomy frames for multimodal image-to-image translation.

A Taskonomy frame is one camera view: ``point_{p}_view_{v}`` of a building.
Each domain (``rgb``, ``normal``, ``reshading``, ``depth_euclidean``, ...)
of a frame is a PNG named ``point_{p}_view_{v}_domain_{domain}.png`` in a
folder named after the domain. The folders are laid out in one of three
ways (see :data:`LAYOUTS`):

* ``building``: ``<root>/<building>/<domain>/`` -- the official
  organisation by building (StanfordVL/taskonomy ``data/README.md``
  describes the domain folders of one building), one folder per building.
* ``single_building``: ``<root>/<domain>/`` -- one building as its own
  root, as the public sample building (alexsax/taskonomy-sample-model-1,
  "Cauthron") that TokenFusion trains and evaluates on.
* ``omnidata``: ``<root>/<domain>/taskonomy/<building>/`` -- what the
  Omnidata download tool (``omnitools.download``) writes for the Taskonomy
  component.

A split is a list file with one frame per line: the path of the frame's
PNG relative to ``data_root`` with ``{domain}`` where the domain name goes,
e.g. ``{domain}/point_0_view_0_domain_{domain}.png`` for the sample
building (TokenFusion's lists name 1,000 train and 500 val frames of the
sample building this way, relative to its root) or
``cauthron/{domain}/point_0_view_0_domain_{domain}.png`` for the
per-building layout. Every domain is looked up by replacing each
``{domain}`` of the line by the domain's name. :func:`list_taskonomy_frames`
writes such lines for a tree in any of the layouts.
"""
import logging
import os
import os.path as osp
import re
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset
from mmengine.fileio import list_from_file
from mmengine.logging import print_log
from mmseg.registry import DATASETS

from .transforms.loading import DOMAIN_FORMATS

FRAME = 'point_{point}_view_{view}_domain_{domain}.png'
LAYOUTS = {
    'building': '{building}/{domain}/' + FRAME,
    'single_building': '{domain}/' + FRAME,
    'omnidata': '{domain}/taskonomy/{building}/' + FRAME,
}
# The file name of a split-list line, with the {domain} placeholder.
_LINE_NAME = re.compile(r'^point_(\d+)_view_(\d+)_domain_\{domain\}\.png$')
MAX_SOURCES = 4


def frame_template(layout: str, building: str, point: int, view: int) -> str:
    """The split-list line of a frame (``{domain}`` left in place)."""
    return LAYOUTS[layout].replace('{building}', building).replace(
        '{point}', str(point)).replace('{view}', str(view))


def list_taskonomy_frames(data_root: str,
                          domains: Sequence[str],
                          layout: str = 'building') -> List[str]:
    """Split-list lines of every frame under ``data_root`` that has a file
    of every one of ``domains``, sorted by (building, point, view).

    Frames missing a domain are left out and counted in a warning (whole
    Taskonomy buildings lack some domains).

    Args:
        data_root (str): Root of the tree.
        domains (Sequence[str]): Domains a frame must have; the frames are
            enumerated from the folder of the first one.
        layout (str): A key of :data:`LAYOUTS`.
    """
    if layout not in LAYOUTS:
        raise ValueError(f'Unknown layout {layout!r}; expected one of '
                         f'{sorted(LAYOUTS)}')
    if isinstance(domains, str) or not domains:
        raise ValueError(f'domains must be a non-empty sequence of names, '
                         f'got {domains!r}')
    first = domains[0]
    pattern = re.compile(r'^point_(\d+)_view_(\d+)_domain_' +
                         re.escape(first) + r'\.png$')
    if layout == 'single_building':
        folders = {'': osp.join(data_root, first)}
    elif layout == 'building':
        folders = {
            b: osp.join(data_root, b, first)
            for b in sorted(os.listdir(data_root))
            if osp.isdir(osp.join(data_root, b, first))
        }
    else:
        parent = osp.join(data_root, first, 'taskonomy')
        buildings = sorted(os.listdir(parent)) if osp.isdir(parent) else []
        folders = {b: osp.join(parent, b) for b in buildings}
    if not any(osp.isdir(f) for f in folders.values()):
        raise FileNotFoundError(f'No {first} folder of the {layout!r} layout '
                                f'({LAYOUTS[layout]}) under {data_root}')
    frames, incomplete = [], 0
    for building, folder in folders.items():
        found = []
        for name in os.listdir(folder):
            match = pattern.match(name)
            if match:
                found.append((int(match.group(1)), int(match.group(2))))
        for point, view in sorted(found):
            template = frame_template(layout, building, point, view)
            if all(
                    osp.isfile(
                        osp.join(data_root, template.replace('{domain}', d)))
                    for d in domains[1:]):
                frames.append(template)
            else:
                incomplete += 1
    if incomplete:
        print_log(
            f'{incomplete} frame(s) under {data_root} lack one of the '
            f'domains {tuple(domains)} and are not listed',
            logger='current',
            level=logging.WARNING)
    return frames


@DATASETS.register_module()
class TaskonomyDataset(BaseDataset):
    """Taskonomy frames as (sources -> target) translation samples.

    Each data info holds ``frame`` (the split-list line), ``point``,
    ``view``, ``sources`` (the ordered source domains), ``target``,
    ``source_paths`` (one path per source, in order), ``target_path`` and
    ``image_size`` (the (H, W) :class:`LoadTranslationDomains` expects).
    The dataset's metainfo holds ``sources`` and ``target``.

    Args:
        sources (Sequence[str]): Input domains, 1 to 4, in the order in
            which they are stacked into the network input, e.g.
            ``('reshading', 'edge_texture')``.
        target (str): The domain to generate, e.g. ``'rgb'``; not one of
            the sources.
        ann_file (str): The split list (see the module docstring); relative
            paths are taken from ``data_root``.
        data_root (str): Root the list's paths are relative to.
        image_size (Sequence[int], optional): (H, W) of every file.
            Defaults to (512, 512), the Taskonomy frame size; None accepts
            any size (the domains of a frame must still agree).
        check_files (bool): Check at start-up that every domain file of
            every frame exists and fail naming the missing ones. Defaults
            to True.
        backend_args (dict, optional): mmengine file backend arguments for
            reading the list.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`
            (``pipeline``, ``test_mode``, ``indices``, ...).
    """

    def __init__(self,
                 sources: Sequence[str],
                 target: str,
                 ann_file: str,
                 data_root: str = '',
                 image_size: Optional[Sequence[int]] = (512, 512),
                 check_files: bool = True,
                 backend_args: Optional[dict] = None,
                 **kwargs) -> None:
        self.sources = self._check_domains(sources, target)
        self.target = target
        self.image_size = tuple(image_size) if image_size else None
        self.check_files = check_files
        self.backend_args = backend_args
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)
        self._metainfo.update(sources=self.sources, target=self.target)

    @staticmethod
    def _check_domains(sources: Sequence[str], target: str) -> tuple:
        if isinstance(sources, str) or not sources:
            raise ValueError('sources must be a sequence of 1 to '
                             f'{MAX_SOURCES} domain names, got {sources!r}')
        sources = tuple(sources)
        if len(sources) > MAX_SOURCES:
            raise ValueError(f'At most {MAX_SOURCES} sources are supported, '
                             f'got {len(sources)}: {sources}')
        if len(set(sources)) != len(sources):
            raise ValueError(f'Duplicate domains in sources={sources}')
        for domain in sources + (target, ):
            if domain not in DOMAIN_FORMATS:
                raise ValueError(
                    f'Unknown Taskonomy domain {domain!r}; expected one of '
                    f'{sorted(DOMAIN_FORMATS)}')
        if target in sources:
            raise ValueError(f'The target {target!r} is also a source '
                             f'(sources={sources})')
        return sources

    def _parse_line(self, line: str, line_no: int) -> dict:
        where = f'{self.ann_file}:{line_no}'
        example = '{domain}/point_0_view_0_domain_{domain}.png'
        if len(line.split()) != 1:
            raise ValueError(f'{where}: expected one frame path per line, '
                             f'got {line!r}')
        if '{domain}' not in line:
            raise ValueError(
                f'{where}: {line!r} has no {{domain}} placeholder; a line is '
                'a frame path relative to data_root with {domain} where the '
                f'domain name goes, e.g. {example!r}')
        if re.search(r'[{}]', line.replace('{domain}', '')):
            raise ValueError(f'{where}: {line!r} holds braces other than '
                             'the {domain} placeholder')
        match = _LINE_NAME.match(osp.basename(line))
        if match is None:
            raise ValueError(
                f'{where}: the file name of {line!r} is not a Taskonomy '
                'frame name point_{p}_view_{v}_domain_{domain}.png')
        paths = {
            d: osp.join(self.data_root, line.replace('{domain}', d))
            for d in self.sources + (self.target, )
        }
        return dict(
            frame=line,
            point=int(match.group(1)),
            view=int(match.group(2)),
            sources=self.sources,
            target=self.target,
            source_paths=[paths[d] for d in self.sources],
            target_path=paths[self.target],
            image_size=self.image_size)

    def load_data_list(self) -> List[dict]:
        if not self.ann_file:
            raise ValueError(
                f'{type(self).__name__} needs an ann_file (split list)')
        if self.backend_args is None and not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'Split list {self.ann_file} does not exist')
        lines = [
            line.strip() for line in list_from_file(
                self.ann_file, backend_args=self.backend_args)
        ]
        data_list, seen = [], {}
        for line_no, line in enumerate(lines, 1):
            if not line:
                continue
            if line in seen:
                raise ValueError(f'{self.ann_file}:{line_no}: frame {line!r} '
                                 f'already listed on line {seen[line]}')
            seen[line] = line_no
            data_list.append(self._parse_line(line, line_no))
        if not data_list:
            raise ValueError(f'Split list {self.ann_file} lists no frames')
        if self.check_files:
            self._check_files(data_list)
        return data_list

    def _check_files(self, data_list: List[dict]) -> None:
        missing = []
        for info in data_list:
            files = list(zip(info['sources'], info['source_paths']))
            files.append((info['target'], info['target_path']))
            missing += [
                f'frame {info["frame"]!r}: missing {domain} file '
                f'{path}' for domain, path in files if not osp.isfile(path)
            ]
        if missing:
            shown = '\n  '.join(missing[:5])
            more = f'\n  ... and {len(missing) - 5} more' \
                if len(missing) > 5 else ''
            raise FileNotFoundError(
                f'{len(missing)} domain file(s) of frames listed by '
                f'{self.ann_file} do not exist (data_root='
                f'{self.data_root}):\n  {shown}{more}')
