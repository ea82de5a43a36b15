"""Figures of the paper as PNG files: comparison grids (Figures 6 and 7), grey-level
histograms (Figure 8) and ROI overlays.

Inputs are numpy-compatible (N, H, W, 1) arrays in [0, 1]; `methods` maps a method name to
its synthesized batch, paired example by example with the real one. Figures are drawn on a
bare matplotlib Figure (Agg canvas, no pyplot state); every grid cell is CELL_INCHES square
at DPI dots per inch, so a grid of R rows and C columns is (C * CELL_INCHES * DPI) pixels
wide and (R * CELL_INCHES * DPI) high. Each function writes its PNG and returns the Figure
(a grid's cells are figure.axes in row-major order).
"""

import numpy as np
from matplotlib.figure import Figure

from fproi_jax import atomic
from fproi_jax.roi import binarise

CELL_INCHES = 2.0
DPI = 100
REAL_STYLE, SYNTH_STYLE = ("lime", "solid"), ("red", "dashed")


def _images(name, array, shape=None):
    """Checks an (N, H, W, 1) batch (of `shape`, if given); returns it as (N, H, W)."""
    array = np.asarray(array)
    if array.ndim != 4 or array.shape[-1] != 1:
        raise ValueError(f"{name} must have shape (N, H, W, 1), got {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    return array[..., 0]


def _method_images(methods, shape):
    if not methods:
        raise ValueError("methods must name at least one method")
    return {name: _images(f"methods[{name!r}]", array, shape) for name, array in methods.items()}


def _count(n, available):
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return min(n, available)


def _save(figure, path):
    atomic.save_figure(figure, path, dpi=DPI)


def _image_grid(path, cells, column_titles, row_labels, contours=None):
    """Draws cells[r][c] (2-D images in [0, 1]) in grey, with optional contours[r][c]:
    a list of (mask, (colour, line style)) outlines drawn over the image."""
    rows, columns = len(cells), len(column_titles)
    figure = Figure(figsize=(columns * CELL_INCHES, rows * CELL_INCHES), dpi=DPI)
    axes = figure.subplots(rows, columns, squeeze=False)
    for r, c in np.ndindex(rows, columns):
        ax = axes[r, c]
        ax.imshow(cells[r][c], cmap="gray", vmin=0.0, vmax=1.0)
        for mask, (colour, style) in contours[r][c] if contours else ():
            if mask.any() and not mask.all():
                ax.contour(mask, levels=[0.5], colors=colour, linestyles=style, linewidths=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title(column_titles[c], fontsize=9)
        if c == 0:
            ax.set_ylabel(row_labels[r], fontsize=8)
    figure.tight_layout(pad=0.3)
    _save(figure, path)
    return figure


def _roi_box(mask, margin):
    """Row and column slices of the mask's bounding box grown by `margin` pixels, clipped to
    the image; the whole image when the mask is empty."""
    if not mask.any():
        return slice(None), slice(None)
    bounds = []
    for axis in (1, 0):
        present = np.flatnonzero(mask.any(axis=axis))
        size = mask.shape[1 - axis]
        bounds.append(slice(max(present[0] - margin, 0), min(present[-1] + 1 + margin, size)))
    return tuple(bounds)


def comparison_grid(path, inputs, roi, methods, n=4, margin=8):
    """Paper Figures 6 and 7: real image and each method's synthesized image, per example.

    Each of the first n examples takes two rows: the whole images, then the tumour region
    image * roi (roi the REAL ROI, as in the tumour-region metrics) cropped to the ROI's
    bounding box plus `margin` pixels (the whole image when the ROI is empty).
    Columns: "Input" (the real image), then one per method.
    """
    inputs = _images("inputs", inputs)
    roi = _images("roi", roi, inputs.shape + (1,))
    synthesized = _method_images(methods, inputs.shape + (1,))
    cells, labels = [], []
    for i in range(_count(n, len(inputs))):
        row = [inputs[i], *(images[i] for images in synthesized.values())]
        box = _roi_box(binarise(roi[i]), margin)
        cells += [row, [(image * roi[i])[box] for image in row]]
        labels += [f"example {i}", f"example {i}: tumour"]
    return _image_grid(path, cells, ["Input", *synthesized], labels)


def roi_grid(path, rois_real, rois_synth, images, n=4):
    """Real ROI (solid lime) and synthesized ROI (dashed red) outlined over the real image.

    rois_synth: {method: synthesized ROI batch}; ROIs are outlined at the 0.5 level.
    Rows: the first n examples; columns: one per method.
    """
    images = _images("images", images)
    shape = images.shape + (1,)
    real = binarise(_images("rois_real", rois_real, shape))
    synthesized = {
        name: binarise(rois) for name, rois in _method_images(rois_synth, shape).items()
    }
    count = _count(n, len(images))
    cells = [[images[i]] * len(synthesized) for i in range(count)]
    contours = [
        [[(real[i], REAL_STYLE), (rois[i], SYNTH_STYLE)] for rois in synthesized.values()]
        for i in range(count)
    ]
    return _image_grid(path, cells, list(synthesized), [f"example {i}" for i in range(count)],
                       contours)


def histogram_fractions(real, methods, bins=64, exclude_background=True):
    """The histograms grey_histograms draws: (bin edges, real fractions, {method: fractions}).

    `bins` equal bins over [0, 1]; a fraction is the count in the bin over the number of
    pixels kept. exclude_background (default True): keep only the pixels where the REAL
    image is not exactly 0 (the black background outside the anatomy, which would otherwise
    dwarf every other bin), in the real and in every synthesized batch, so the sets stay
    paired pixel for pixel.
    """
    real = _images("real", real)
    synthesized = _method_images(methods, real.shape + (1,))
    keep = real > 0 if exclude_background else np.ones(real.shape, bool)
    if not keep.any():
        raise ValueError("real has no non-zero pixels; pass exclude_background=False")
    edges = np.histogram_bin_edges([], bins, range=(0.0, 1.0))

    def fractions(images):
        values = images[keep]
        return np.histogram(values, edges)[0] / values.size

    return edges, fractions(real), {name: fractions(images) for name, images in synthesized.items()}


def grey_histograms(path, real, methods, bins=64, exclude_background=True):
    """Paper Figure 8: grey-level histogram of the real images against each method's.

    One panel per method, both histograms (histogram_fractions) as step lines over [0, 1],
    in fraction of pixels; exclude_background as in histogram_fractions.
    """
    edges, real_fractions, synthesized = histogram_fractions(
        real, methods, bins, exclude_background)
    figure = Figure(figsize=(4.0 * len(synthesized), 3.0), dpi=DPI)
    axes = figure.subplots(1, len(synthesized), squeeze=False)[0]
    for ax, (name, fractions) in zip(axes, synthesized.items()):
        ax.stairs(real_fractions, edges, label="real")
        ax.stairs(fractions, edges, label=name)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("grey level")
        ax.set_ylabel("fraction of pixels")
        ax.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path)
    return figure


def samples_grid(path, rows):
    """Several draws for one new mask: per row, the source slice, then each draw, with the
    mask asked for (solid lime) and a segmenter's finding in the draw (dashed red) outlined.

    rows: [(label, source (H, W, 1), mask (H, W, 1), draws (K, H, W, 1), found (K, H, W, 1))].
    """
    if not rows:
        raise ValueError("rows must hold at least one new mask")
    draws = len(rows[0][3])
    cells, contours = [], []
    for _, source, mask, images, found in rows:
        mask = binarise(np.asarray(mask)[..., 0])
        cells.append([np.asarray(source)[..., 0], *np.asarray(images)[..., 0]])
        contours.append([[(mask, REAL_STYLE)],
                         *[[(mask, REAL_STYLE), (binarise(f[..., 0]), SYNTH_STYLE)]
                           for f in np.asarray(found)]])
    return _image_grid(path, cells, ["source slice", *(f"draw {k + 1}" for k in range(draws))],
                       [row[0] for row in rows], contours)
