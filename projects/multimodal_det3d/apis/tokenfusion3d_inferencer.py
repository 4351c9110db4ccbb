"""Run a trained TokenFusion 3D detector (or its points-only GroupFree3D
baseline) on your own scans, with mmdet3d's inferencer conventions."""
import copy
import os.path as osp
from typing import List, Optional, Union

import mmcv
import numpy as np
import torch
import torch.nn as nn
from mmdet3d.apis import MultiModalityDet3DInferencer
from mmdet3d.registry import INFERENCERS, MODELS
from mmdet3d.structures import Det3DDataSample, get_box_type
from mmengine.dataset import Compose
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.structures import InstanceData
from mmengine.utils import mkdir_or_exist
from rich.progress import track

from projects.common.checkpoint import (CheckpointMismatchError,
                                        load_state_dict_exactly,
                                        unwrap_state_dict)
from .drawing import compose_views, draw_boxes_3d, select_boxes
from .scan_inputs import DEFAULT_CAM_TYPE, ScanReader, sample_info

# The pixel coordinate of the first pixel in each calibration, for models
# without a fusion config (the points-only baseline) that only draw with
# it: mmdet3d's SUN RGB-D converter writes MATLAB's 1-based depth2img.
PIXEL_ORIGIN = dict(depth2img=1.0, lidar2img=0.0)
# the parts of a TokenFusion model that hold its image branch
IMAGE_BRANCH = ('img_backbone.', 'img_bbox_head.', 'seed_fusion.')


def _modalities(keys) -> str:
    has_image = any(key.startswith(IMAGE_BRANCH) for key in keys)
    return 'points + image' if has_image else 'points only'


@INFERENCERS.register_module()
class TokenFusion3DInferencer(MultiModalityDet3DInferencer):
    """mmdet3d's multi-modality inferencer for the 3D detectors of this
    repository: ``TokenFusionGroupFree3D`` on one image (SUN RGB-D layout,
    ``depth2img``) or on posed views (ScanNet layout, ``lidar2img`` per
    view), and the points-only GroupFree3D configs (the image is then only
    drawn on)::

        inferencer = TokenFusion3DInferencer(CONFIG, weights=CHECKPOINT)
        result = inferencer(
            dict(points='000017.bin', img='000017.jpg',
                 infos='sunrgbd_infos.pkl'), out_dir='outputs')
        result['predictions'][0]   # labels_3d, scores_3d, bboxes_3d, ...

    Inputs (``points`` is always the path of a float32 ``.bin`` with the
    config's ``LoadPointsFromFile.load_dim`` values per point):

    - one image: ``dict(points, img=IMAGE, infos=PKL)`` (the entry whose
      ``images[cam_type].img_path`` has IMAGE's file name, holding
      ``depth2img``) or ``dict(points, img, depth2img=MATRIX_OR_TXT)``;
    - posed views: ``dict(points, img=FOLDER or [VIEW, ...], infos=PKL)``
      (the entry whose ``lidar_points.lidar_path`` has the points' file
      name, with the ``images`` list of
      ``tools/dataset_converters/scannet_posed_images.py`` and the
      ``axis_align_matrix``);
    - a list of such dicts, or one dict whose ``points`` and ``img`` are
      folders: one scan per entry of ``infos``.

    What differs from ``MultiModalityDet3DInferencer`` (which cannot run
    these models, see ``docs/tokenfusion_3d.md``): the scan goes through
    the config's own test pipeline with the keys the dataset gives it
    (``depth2img``, per-view matrices, depth boxes), the checkpoint must fit
    the model exactly, boxes are drawn without open3d on the original
    image(s), and predictions are returned once per scan for any
    ``batch_size``. ``PointSample`` draws each scan's points with ``seed``
    (the global numpy state is restored), so a scan's boxes do not depend
    on its place among the inputs.

    Args:
        model (str | Config): Config file or object.
        weights (str): Checkpoint (required: a model must be trained).
        device (str, optional): Defaults to the available device.
        scope (str): Registry scope. Defaults to 'mmdet3d'.
        seed (int): Seed of each scan's point sampling. Defaults to 0.
        show_progress (bool): Progress bar over the batches. Defaults to
            True.
    """

    preprocess_kwargs: set = set()
    visualize_kwargs: set = {
        'return_vis', 'show', 'wait_time', 'draw_pred', 'pred_score_thr',
        'img_out_dir', 'no_save_vis', 'agnostic_nms'
    }

    def __init__(self,
                 model=None,
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 scope: str = 'mmdet3d',
                 seed: int = 0,
                 show_progress: bool = True) -> None:
        if model is None:
            raise ValueError('model: give the config the checkpoint was '
                             'trained with')
        if isinstance(model, str) and not osp.isfile(model):
            # mmengine would look the name up in mmdet3d's model zoo
            raise FileNotFoundError(f'config {model} does not exist')
        if weights is None:
            raise ValueError('weights: give the checkpoint of a trained '
                             'model')
        self.seed = seed
        super().__init__(
            model=model, weights=weights, device=device, scope=scope)
        self.show_progress = show_progress

    # ------------------------------------------------------------------ model
    def _init_model(self, cfg, weights: str, device: str = 'cpu') -> nn.Module:
        """The config's model with the checkpoint's weights, loaded
        strictly; classes from the checkpoint, checked against the
        config's. The config's test dataset is not built (mmdet3d's
        inferencer builds it for a palette; the synthetic set would
        generate its scenes)."""
        self.config_name = cfg.filename or 'the given config'
        if not osp.isfile(weights):
            raise FileNotFoundError(f'checkpoint {weights} does not exist')
        cfg = copy.deepcopy(cfg)
        self._convert_syncbn(cfg.model)
        cfg.model.train_cfg = None
        model = MODELS.build(cfg.model)
        checkpoint = _load_checkpoint(weights, map_location='cpu')
        try:
            load_state_dict_exactly(model, checkpoint, weights,
                                    f'the model of {self.config_name}')
        except CheckpointMismatchError as error:
            theirs = _modalities(unwrap_state_dict(checkpoint, weights, ''))
            ours = _modalities(model.state_dict())
            if theirs == ours:
                raise
            raise CheckpointMismatchError(
                f'{error}; the checkpoint is a {theirs} model, the config '
                f'builds a {ours} one') from None
        model.dataset_meta = dict(
            classes=self._classes(cfg, checkpoint, model, weights))
        model.cfg = cfg
        model.to(device)
        model.eval()
        return model

    def _classes(self, cfg, checkpoint: dict, model: nn.Module,
                 weights: str) -> tuple:
        meta = checkpoint.get('meta') or {}
        trained = (meta.get('dataset_meta') or {}).get('classes')
        dataset_cfg = cfg.get('test_dataloader', {}).get('dataset', {})
        configured = (dataset_cfg.get('metainfo') or {}).get('classes')
        if trained is None and configured is None:
            raise KeyError(
                f'no class names: neither checkpoint {weights} '
                '(meta.dataset_meta.classes) nor '
                f'{self.config_name} (test_dataloader.dataset.metainfo.'
                'classes) has them')
        if trained is not None and configured is not None and \
                tuple(trained) != tuple(configured):
            raise ValueError(f'checkpoint {weights} was trained on classes '
                             f'{tuple(trained)}, {self.config_name} names '
                             f'{tuple(configured)}')
        classes = tuple(trained if trained is not None else configured)
        num_classes = getattr(model.bbox_head, 'num_classes', len(classes))
        if num_classes != len(classes):
            raise ValueError(
                f'{self.config_name}: the head predicts {num_classes} '
                f'classes, the class names are {len(classes)}: {classes}')
        return classes

    # --------------------------------------------------------------- pipeline
    def _init_pipeline(self, cfg) -> Compose:
        """The config's test pipeline unchanged; its loading steps tell what
        a scan consists of."""
        pipeline_cfg = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
        types = [step['type'] for step in pipeline_cfg]
        loaders = [
            s for s in pipeline_cfg if s['type'] == 'LoadPointsFromFile'
        ]
        if len(loaders) != 1:
            raise ValueError(
                f'{self.config_name}: the test pipeline must load the points '
                f'with one LoadPointsFromFile, it has {len(loaders)}')
        # 6 is LoadPointsFromFile's own default
        self.load_dim = int(loaders[0].get('load_dim', 6))
        self.coord_type = loaders[0]['coord_type']
        self.box_type_3d, self.box_mode_3d = get_box_type(self.coord_type)
        self.multi_view = 'LoadMultiViewPosedImages' in types
        self.needs_alignment = 'GlobalAlignment' in types
        calib_key = 'lidar2img' if self.multi_view else 'depth2img'
        fusion = getattr(self.model, 'fusion_cfg', None)
        if fusion is None:
            if self.multi_view:
                raise ValueError(
                    f'{self.config_name}: a points-only model with posed '
                    'views is not supported (nothing to draw the boxes on); '
                    "use mmdet3d's LidarDet3DInferencer")
            self.pixel_origin = PIXEL_ORIGIN[calib_key]
        else:
            if fusion['proj_key'] != calib_key:
                raise ValueError(
                    f'{self.config_name}: the model projects with '
                    f"fusion.proj_key={fusion['proj_key']!r}, but its test "
                    'pipeline loads ' +
                    ('posed views' if self.multi_view else 'one image') +
                    f', which come with {calib_key!r}')
            self.pixel_origin = float(fusion['pixel_origin'])
        return Compose(pipeline_cfg)

    def _init_visualizer(self, cfg):
        """None: mmdet3d's ``Det3DLocalVisualizer`` needs open3d for the
        multi-modality task and projects with keys the loader does not set;
        boxes are drawn with :func:`draw_boxes_3d` instead."""
        return None

    def _inputs_to_list(self, inputs, cam_type: str = DEFAULT_CAM_TYPE):
        """Checked scans: see the class docstring and
        :mod:`.scan_inputs`."""
        reader = ScanReader(self.load_dim, self.multi_view,
                            self.needs_alignment, cam_type)
        return reader.read(inputs)

    def _prepare(self, scan: dict) -> dict:
        """One scan through the test pipeline, with its own seed."""
        info = sample_info(scan, self.load_dim, self.box_type_3d,
                           self.box_mode_3d)
        state = np.random.get_state()
        np.random.seed(self.seed)
        try:
            data = self.pipeline(info)
        finally:
            np.random.set_state(state)
        if data is None:
            raise ValueError(f'{scan["points"]}: the test pipeline of '
                             f'{self.config_name} dropped the scan')
        return data

    def preprocess(self, inputs: list, batch_size: int = 1, **kwargs):
        """Batches of prepared scans (``inputs`` from
        :meth:`_inputs_to_list`)."""
        for start in range(0, len(inputs), batch_size):
            yield self.collate_fn([
                self._prepare(scan)
                for scan in inputs[start:start + batch_size]
            ])

    # ------------------------------------------------------------------- call
    def __call__(self,
                 inputs: Union[dict, List[dict]],
                 batch_size: int = 1,
                 return_datasamples: bool = False,
                 cam_type: Optional[str] = None,
                 **kwargs) -> dict:
        """Detect boxes in the scans of ``inputs``.

        Args:
            inputs (dict | list[dict]): See the class docstring.
            batch_size (int): Scans per forward pass. Defaults to 1.
            return_datasamples (bool): Return ``Det3DDataSample``s instead
                of dicts. Defaults to False.
            cam_type (str, optional): Camera of the single-image entries of
                ``infos``; defaults to 'CAM0' (SUN RGB-D). Posed views take
                their cameras from the entry and have none.
            **kwargs: ``out_dir`` (writes ``preds/<points>.json`` and
                ``vis_camera/<camera>/<image>.png``, the views of a scan in
                ``vis_camera/views/<points>.png``), ``pred_score_thr``
                (boxes drawn, 0.3), ``agnostic_nms`` (IoU of a
                class-agnostic NMS for the drawing), ``return_vis``,
                ``show``, ``wait_time``, ``draw_pred``, ``no_save_vis``,
                ``no_save_pred``, ``print_result``.

        Returns:
            dict: ``predictions`` (one per scan, in input order) and
            ``visualization`` (BGR drawings, with ``return_vis``).
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be a positive int, got '
                             f'{batch_size!r}')
        if self.multi_view and cam_type is not None:
            raise ValueError(
                f'cam_type={cam_type!r}: {self.config_name} loads posed '
                "views, whose cameras are the entry's images list")
        cam_type = cam_type or DEFAULT_CAM_TYPE
        (_, forward_kwargs, visualize_kwargs,
         postprocess_kwargs) = self._dispatch_kwargs(**kwargs)
        visualize_kwargs['cam_type_dir'] = 'views' if self.multi_view \
            else cam_type
        scans = self._inputs_to_list(inputs, cam_type=cam_type)
        batches = self.preprocess(scans, batch_size=batch_size)
        if self.show_progress:
            batches = track(
                batches,
                description='Inference',
                total=-(-len(scans) // batch_size))
        results = dict(predictions=[], visualization=[])
        done = 0
        # mmdet3d's __call__ post-processes all predictions so far after
        # every batch (each scan returned again per later batch); here each
        # batch is drawn and post-processed once
        for data in batches:
            preds = self.forward(data, **forward_kwargs)
            batch_scans = scans[done:done + len(preds)]
            done += len(preds)
            drawn = self.visualize(batch_scans, preds, **visualize_kwargs)
            out = self.postprocess(preds, drawn, return_datasamples,
                                   **postprocess_kwargs)
            results['predictions'].extend(out['predictions'])
            if out['visualization'] is not None:
                results['visualization'].extend(out['visualization'])
        return results

    @torch.no_grad()
    def forward(self, inputs: dict, **kwargs) -> List[Det3DDataSample]:
        return self.model.test_step(inputs)

    # ---------------------------------------------------------- visualization
    def visualize(
            self,
            inputs: List[dict],
            preds: List[Det3DDataSample],
            return_vis: bool = False,
            show: bool = False,
            wait_time: int = 0,
            draw_pred: bool = True,
            pred_score_thr: float = 0.3,
            no_save_vis: bool = False,
            img_out_dir: str = '',
            cam_type_dir: str = DEFAULT_CAM_TYPE,
            agnostic_nms: Optional[float] = None
    ) -> Optional[List[np.ndarray]]:
        """Draw each scan's boxes scoring at least ``pred_score_thr`` (after
        a class-agnostic NMS at ``agnostic_nms`` IoU, if given) on its
        original image, or on each of its views (in a grid).

        Returns:
            list[np.ndarray] | None: BGR drawings with ``return_vis``.
        """
        if no_save_vis:
            img_out_dir = ''
        if not (show or img_out_dir or return_vis):
            return None
        drawings = []
        for scan, pred in zip(inputs, preds):
            instances = pred.pred_instances_3d if draw_pred else \
                pred.pred_instances_3d[:0]
            instances = select_boxes(instances, pred_score_thr, agnostic_nms)
            if self.multi_view:
                drawn = self._draw_views(scan, pred.metainfo, instances)
                name = osp.splitext(osp.basename(scan['points']))[0]
            else:
                drawn = self._draw(
                    mmcv.imread(scan['img']), instances, scan['depth2img'],
                    pred.metainfo)
                name = osp.splitext(osp.basename(scan['img']))[0]
            if img_out_dir:
                folder = osp.join(img_out_dir, 'vis_camera', cam_type_dir)
                mkdir_or_exist(folder)
                out_file = osp.join(folder, f'{name}.png')
                if not mmcv.imwrite(drawn, out_file):
                    raise OSError(f'cannot write {out_file}')
            if show:
                mmcv.imshow(drawn, name, wait_time)
            drawings.append(drawn)
        return drawings if return_vis else None

    def _draw(self, image: np.ndarray, instances: InstanceData, proj_mat,
              meta: dict) -> np.ndarray:
        return draw_boxes_3d(
            image,
            instances.bboxes_3d,
            instances.labels_3d.numpy(),
            self.model.dataset_meta['classes'],
            proj_mat,
            self.pixel_origin,
            scores=instances.scores_3d.numpy(),
            img_meta=meta,
            coord_type=self.coord_type)

    def _draw_views(self, scan: dict, meta: dict,
                    instances: InstanceData) -> np.ndarray:
        """The views the pipeline picked, each with its calibration before
        the resize (the one of the file on disk)."""
        views = []
        for path in meta['img_path']:
            index = scan['img_paths'].index(path)
            views.append(
                self._draw(
                    mmcv.imread(path), instances, scan['lidar2img'][index],
                    meta))
        return compose_views(views)
