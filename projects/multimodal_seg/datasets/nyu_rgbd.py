"""NYU Depth v2, 40-class RGB-D semantic segmentation."""
from mmseg.registry import DATASETS

from .multimodal_seg_dataset import MultiModalSegDataset
from .palette import bit_interleaved_palette

NYU40_CLASSES = ('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table',
                 'door', 'window', 'bookshelf', 'picture', 'counter', 'blinds',
                 'desk', 'shelves', 'curtain', 'dresser', 'pillow', 'mirror',
                 'floor mat', 'clothes', 'ceiling', 'books', 'refrigerator',
                 'television', 'paper', 'towel', 'shower curtain', 'box',
                 'whiteboard', 'person', 'night stand', 'toilet', 'sink',
                 'lamp', 'bathtub', 'bag', 'otherstructure', 'otherfurniture',
                 'otherprop')


@DATASETS.register_module()
class NYUDv2RGBDDataset(MultiModalSegDataset):
    """NYUDv2 with the 40-class labels of Gupta et al. (795 train / 654
    test frames of the 1449-frame labelled set), ignore index 255.

    The default layout is the one ``tools/dataset_converters/nyu.py`` writes
    (``rgb/ depth/ label/ train.txt test.txt``); ``layout='tokenfusion'``,
    ``'cmx'`` or ``'dformer'`` read those public releases directly.
    mmseg's own ``NYUDataset`` is a depth-estimation dataset (27 scene
    classes) and is unrelated.
    """
    METAINFO = dict(
        classes=NYU40_CLASSES,
        palette=bit_interleaved_palette(len(NYU40_CLASSES) + 1)[1:])
