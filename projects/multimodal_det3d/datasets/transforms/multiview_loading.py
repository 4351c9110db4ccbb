"""Load N posed views of a scene, resized to one size, with their
projection matrices (ScanNet multi-view fusion)."""
from typing import Optional, Sequence, Tuple

import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

# per-frame arrays a multi-view sample carries (MultiViewScanNetDataset)
FRAME_KEYS = ('lidar2img', 'cam2img', 'lidar2cam')


def sample_view_indices(num_frames: int,
                        num_views: int,
                        offset: Optional[float] = None) -> np.ndarray:
    """Evenly spaced frame indices.

    With ``num_frames >= num_views`` the frames are cut into ``num_views``
    equal bins and bin ``k`` gives frame ``floor((k + offset) * num_frames
    / num_views)``: ``offset = 0.5`` takes the bin centres (deterministic,
    for testing), a random offset in [0, 1) shifts all picks together
    (training). With fewer frames than views the frames are repeated
    cyclically (``0, 1, ..., F - 1, 0, 1, ...``), starting at frame
    ``floor(offset * num_frames)`` when an offset is given and at frame 0
    otherwise.

    Args:
        num_frames (int): frames of the scene (> 0).
        num_views (int): views wanted (> 0).
        offset (float, optional): in [0, 1); None is the deterministic
            choice (bin centres, cyclic start at 0).

    Returns:
        np.ndarray: (num_views, ) int64 frame indices, non-decreasing when
        ``num_frames >= num_views``.
    """
    if num_frames < 1 or num_views < 1:
        raise ValueError('need num_frames >= 1 and num_views >= 1, got '
                         f'{num_frames} and {num_views}')
    if offset is not None and not 0 <= offset < 1:
        raise ValueError(f'offset must be in [0, 1), got {offset}')
    views = np.arange(num_views)
    if num_frames >= num_views:
        bin_offset = 0.5 if offset is None else float(offset)
        picks = np.floor((views + bin_offset) * num_frames / num_views)
        return np.minimum(picks, num_frames - 1).astype(np.int64)
    start = 0 if offset is None else int(np.floor(offset * num_frames))
    return ((start + views) % num_frames).astype(np.int64)


def resize_matrix(w_scale: float, h_scale: float) -> np.ndarray:
    """(4, 4) matrix that maps pixel ``(u, v)`` of a projection to ``(u *
    w_scale, v * h_scale)``, to be left-multiplied onto ``cam2img`` or
    ``lidar2img`` (the mmdet3d convention for resized images)."""
    return np.diag([w_scale, h_scale, 1.0, 1.0])


@TRANSFORMS.register_module()
class LoadMultiViewPosedImages(BaseTransform):
    """Pick ``num_views`` posed frames of a scene, load and resize them.

    Required keys (from ``MultiViewScanNetDataset`` with
    ``modality['use_camera']``; not needed when ``num_views=0``):

    - img_paths (list[str]): the F usable frames of the scene.
    - lidar2img, cam2img, lidar2cam (np.ndarray): (F, 4, 4).

    Added / replaced keys (when ``num_views > 0``):

    - img (list[np.ndarray]): V uint8 (H, W, 3) BGR images (mmcv order),
      what ``Pack3DDetInputs`` packs into a (V, 3, H, W) tensor and
      ``Det3DDataPreprocessor`` batches into (B, V, 3, H, W).
    - img_path (list[str]): the V files.
    - lidar2img (np.ndarray): (V, 4, 4) float32 with the resize folded in,
      so it maps aligned points straight to pixels of the resized views.
    - cam2img (np.ndarray): (V, 4, 4) float32, likewise resized.
    - lidar2cam (np.ndarray): (V, 4, 4) float32.
    - img_shape (tuple): (H, W) of every view after resizing.
    - ori_shape (tuple): (h, w) of the first view before resizing (ScanNet
      frames share one size; per-view scales live in the matrices).
    - num_views (int): V.
    - scale_factor (tuple): (1.0, 1.0), the resize being in the matrices;
      flip (False), flip_direction (None): the records the projection
      reads.

    ``Pack3DDetInputs``' default ``meta_keys`` already carry ``lidar2img``,
    ``cam2img``, ``lidar2cam``, ``num_views``, ``img_path``, ``img_shape``
    and ``ori_shape``; keep them when passing custom ``meta_keys``.

    With ``num_views=0`` nothing is loaded: there is no ``img``, the
    per-frame arrays are dropped (they would only bloat the metainfo) and
    ``num_views`` is 0 (the points-only setting of TokenFusion Table 10).

    View choice (``sampling='uniform'``, see :func:`sample_view_indices`):
    evenly spaced over the scene's frames, at the bin centres when
    ``test_mode`` (deterministic) and with one random offset per sample in
    training. A scene with fewer frames than ``num_views`` repeats its
    frames cyclically, so every sample has exactly ``num_views`` views.

    The matrices project points as they are after ``GlobalAlignment``; a
    model must undo later point augmentation (flip, rotation, scaling)
    before projecting.

    Args:
        num_views (int): V, views per sample; 0 loads no image.
        img_scale (tuple[int, int], optional): (W, H) every view is resized
            to (bilinear, aspect ratio not kept). None keeps the original
            size (all picked frames must then share it).
        sampling (str): view choice; only 'uniform'.
        test_mode (bool): deterministic view choice. Defaults to False.
        color_type (str): mmcv ``imfrombytes`` flag. Defaults to 'color'.
        imdecode_backend (str): Defaults to 'cv2'.
        backend_args (dict, optional): file backend arguments.
    """

    SAMPLINGS = ('uniform', )

    def __init__(self,
                 num_views: int,
                 img_scale: Optional[Sequence[int]] = None,
                 sampling: str = 'uniform',
                 test_mode: bool = False,
                 color_type: str = 'color',
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
        if not isinstance(num_views, int) or num_views < 0:
            raise ValueError(
                f'num_views must be an int >= 0, got {num_views!r}')
        if img_scale is not None:
            if len(img_scale) != 2 or min(img_scale) < 1:
                raise ValueError('img_scale must be (W, H) with positive '
                                 f'sizes, got {img_scale!r}')
            img_scale = (int(img_scale[0]), int(img_scale[1]))
        if sampling not in self.SAMPLINGS:
            raise ValueError(f'sampling must be one of {self.SAMPLINGS}, got '
                             f'{sampling!r}')
        self.num_views = num_views
        self.img_scale = img_scale
        self.sampling = sampling
        self.test_mode = test_mode
        self.color_type = color_type
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args

    def _pick(self, num_frames: int) -> np.ndarray:
        offset = None if self.test_mode else np.random.random_sample()
        return sample_view_indices(num_frames, self.num_views, offset)

    def _load(self,
              path: str) -> Tuple[np.ndarray, np.ndarray, Tuple[int, int]]:
        """Image (H, W, 3) BGR (resized), its (4, 4) resize matrix and its
        original (h, w)."""
        img_bytes = fileio.get(path, backend_args=self.backend_args)
        img = mmcv.imfrombytes(
            img_bytes,
            flag=self.color_type,
            channel_order='bgr',
            backend=self.imdecode_backend)
        if img is None:
            raise ValueError(f'cannot decode image {path}')
        ori_hw = img.shape[:2]
        scale = np.eye(4)
        if self.img_scale is not None:
            img, w_scale, h_scale = mmcv.imresize(
                img, self.img_scale, return_scale=True)
            scale = resize_matrix(w_scale, h_scale)
        return img, scale, ori_hw

    def transform(self, results: dict) -> dict:
        """Pick, load and resize the views of one sample.

        Args:
            results (dict): see the class docstring.

        Returns:
            dict: the updated results.
        """
        if self.num_views == 0:
            for key in FRAME_KEYS + ('img_paths', ):
                results.pop(key, None)
            results['num_views'] = 0
            return results
        sample = results.get('lidar_path', results.get('sample_idx', '?'))
        for key in ('img_paths', ) + FRAME_KEYS:
            if key not in results:
                raise KeyError(
                    f'LoadMultiViewPosedImages: sample {sample} has no '
                    f'{key!r}; use MultiViewScanNetDataset with '
                    'modality=dict(use_camera=True, use_lidar=True)')
        img_paths = results['img_paths']
        num_frames = len(img_paths)
        for key in FRAME_KEYS:
            if np.shape(results[key]) != (num_frames, 4, 4):
                raise ValueError(
                    f'LoadMultiViewPosedImages: sample {sample}: {key} must '
                    f'be ({num_frames}, 4, 4) for its {num_frames} frames, '
                    f'got {np.shape(results[key])}')
        if num_frames == 0:
            raise ValueError(
                f'LoadMultiViewPosedImages: sample {sample} has no posed '
                'frame (kept by scannet_posed_images.py --allow-empty); '
                'drop it from the infos or use num_views=0')

        picks = self._pick(num_frames)
        imgs, scales, ori_shapes = [], [], []
        for index in picks:
            img, scale, ori_hw = self._load(img_paths[index])
            imgs.append(img)
            scales.append(scale)
            ori_shapes.append(ori_hw)
        shapes = {img.shape for img in imgs}
        if len(shapes) != 1:
            raise ValueError(
                f'LoadMultiViewPosedImages: views of sample {sample} differ '
                f'in size {sorted(shapes)}; set img_scale')
        scales = np.stack(scales)
        lidar2img = np.asarray(results['lidar2img'], np.float64)[picks]
        cam2img = np.asarray(results['cam2img'], np.float64)[picks]
        lidar2cam = np.asarray(results['lidar2cam'], np.float64)[picks]

        results['img'] = imgs
        results['img_path'] = [img_paths[index] for index in picks]
        results['lidar2img'] = (scales @ lidar2img).astype(np.float32)
        results['cam2img'] = (scales @ cam2img).astype(np.float32)
        results['lidar2cam'] = lidar2cam.astype(np.float32)
        results['img_shape'] = imgs[0].shape[:2]
        results['ori_shape'] = ori_shapes[0]
        results['num_views'] = self.num_views
        # The projection reads these records instead of assuming: the
        # matrices above already map to the loaded size, and the views are
        # not flipped (a list of views is not something RandomFlip3D flips;
        # with 'flip' recorded it leaves them as they are).
        results['scale_factor'] = (1.0, 1.0)
        results['flip'] = False
        results['flip_direction'] = None
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_views={self.num_views}, '
                f'img_scale={self.img_scale}, sampling={self.sampling!r}, '
                f'test_mode={self.test_mode}, '
                f'color_type={self.color_type!r}, '
                f'imdecode_backend={self.imdecode_backend!r})')
