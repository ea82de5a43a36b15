"""PNG grids of the two synthesis paths, written during training to watch progress."""
import pathlib

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from fproi_jax import atomic  # noqa: E402


def write_sample_grid(path: pathlib.Path, columns: dict, title: str = "") -> np.ndarray:
    """One row per example, one column per named (N, H, W, 1) array in [0, 1].

    Writes the grid to `path` (PNG) and returns it as read back: (height, width, 3) uint8 RGB.
    """
    names = list(columns)
    rows = np.asarray(columns[names[0]]).shape[0]
    fig = Figure(figsize=(1.6 * len(names), 1.6 * rows + 0.4), dpi=100)
    axes = fig.subplots(rows, len(names), squeeze=False)
    for col, name in enumerate(names):
        images = np.asarray(columns[name])
        for row in range(rows):
            ax = axes[row, col]
            ax.imshow(images[row, ..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic.save_figure(fig, path)
    with Image.open(path) as png:
        return np.asarray(png.convert("RGB"))
