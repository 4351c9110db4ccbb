"""The reference evaluation's image rendering before FID / KID.

The reference computes FID and KID on PNG files written by matplotlib, not
on the network's tensors: each image is min-max stretched to 0..255 over
all its channels together (float32 arithmetic, then a truncating cast to
uint8), shown with ``imshow`` on axes covering a 5x5-inch figure without
axis decorations, and saved at 100 dpi as a 500x500 RGBA PNG, whose alpha
channel is dropped when it is read back. This resamples 256x256 images to
500x500 with matplotlib's default image interpolation (version dependent)
and changes every image's contrast, so FID / KID of rendered and of raw
images are not comparable; render both the generated and the real images.

The rendering here draws the same figure with matplotlib's Agg canvas in
memory (no file, no pyplot state). Constant images, which the reference
would divide by zero, render black.
"""
import numpy as np

RENDER_INCHES = 5
RENDER_DPI = 100
RENDER_SIZE = RENDER_INCHES * RENDER_DPI


def stretch_to_uint8(image) -> np.ndarray:
    """(C, H, W) image of any range -> (H, W, C) uint8, min-max stretched
    over all channels: ``uint8((x - min) * 255 / (max - min))`` in float32
    (the cast truncates)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise ValueError(f'Expected a (C, H, W) image, got shape '
                         f'{image.shape}')
    low, high = image.min(), image.max()
    if high > low:
        image = (image - low) * np.float32(255) / (high - low)
    else:
        image = np.zeros_like(image)
    return image.transpose(1, 2, 0).astype(np.uint8)


def matplotlib_render(image) -> np.ndarray:
    """Render one (3, H, W) image (any range) as the reference saves it
    for FID / KID.

    Returns:
        np.ndarray: (3, 500, 500) float32 in [-1, 1], the RGB channels of
        the rendering divided by 127.5, minus 1.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f'matplotlib_render takes (3, H, W) RGB images, got '
                         f'shape {image.shape}')
    figure = Figure(figsize=(RENDER_INCHES, RENDER_INCHES), dpi=RENDER_DPI)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.axis('off')
    axes.set_adjustable('box')
    axes.imshow(stretch_to_uint8(image), cmap=None, aspect='equal')
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    if rgba.shape[:2] != (RENDER_SIZE, RENDER_SIZE):
        raise RuntimeError(f'matplotlib rendered {rgba.shape[:2]} pixels, '
                           f'expected {RENDER_SIZE}x{RENDER_SIZE}')
    rgb = rgba[..., :3].transpose(2, 0, 1).astype(np.float32)
    return rgb / np.float32(127.5) - 1
