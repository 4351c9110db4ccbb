"""SUN RGB-D, 37-class RGB-D semantic segmentation."""
from mmseg.registry import DATASETS

from .multimodal_seg_dataset import MultiModalSegDataset
from .palette import bit_interleaved_palette

SUNRGBD37_CLASSES = ('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa',
                     'table', 'door', 'window', 'bookshelf', 'picture',
                     'counter', 'blinds', 'desk', 'shelves', 'curtain',
                     'dresser', 'pillow', 'mirror', 'floor mat', 'clothes',
                     'ceiling', 'books', 'fridge', 'tv', 'paper', 'towel',
                     'shower curtain', 'box', 'whiteboard', 'person',
                     'night stand', 'toilet', 'sink', 'lamp', 'bathtub', 'bag')


@DATASETS.register_module()
class SUNRGBDSegDataset(MultiModalSegDataset):
    """SUN RGB-D with the 37-class labels of the SUN RGB-D toolbox (5285
    train / 5050 test images), ignore index 255.

    The default layout is the one ``tools/dataset_converters/sunrgbd.py``
    writes; ``layout='dformer'`` reads the DFormer / GeminiFusion release.
    """
    METAINFO = dict(
        classes=SUNRGBD37_CLASSES,
        palette=bit_interleaved_palette(len(SUNRGBD37_CLASSES) + 1)[1:])
