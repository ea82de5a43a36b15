"""Figures: PNG files of the expected pixel size, and argument checks."""
import numpy as np
import pytest
from PIL import Image

from fproi_jax.evaluation.figures import (
    CELL_INCHES,
    DPI,
    comparison_grid,
    grey_histograms,
    roi_grid,
)

RNG = np.random.default_rng(0)
N, H, W = 3, 40, 48


def disks():
    rows, cols = np.indices((H, W))
    centres = [(10, 12), (30, 40), (0, 0)]
    masks = [(rows - r) ** 2 + (cols - c) ** 2 <= 36 for r, c in centres]
    masks[2][:] = False  # one example without a tumour
    return np.stack(masks)[..., None].astype(np.float32)


def images():
    real = RNG.random((N, H, W, 1)).astype(np.float32)
    real[:, :5] = 0.0  # exact-zero background
    return real, {"cycleGAN": np.clip(real + 0.1, 0, 1), "Fproi-GAN": real * 0.9}


def png_size(path):
    with Image.open(path) as image:
        image.load()
        return image.size


def cells(columns, rows):
    return (round(columns * CELL_INCHES * DPI), round(rows * CELL_INCHES * DPI))


def test_comparison_grid_writes_a_png_of_input_and_method_columns(tmp_path):
    real, methods = images()
    path = tmp_path / "figures" / "grid.png"
    comparison_grid(path, real, disks(), methods, n=5)
    assert png_size(path) == cells(columns=3, rows=2 * N)
    comparison_grid(tmp_path / "two.png", real, disks(), methods, n=2)
    assert png_size(tmp_path / "two.png") == cells(columns=3, rows=4)


def test_roi_grid_writes_a_png(tmp_path):
    real, _ = images()
    roi = disks()
    synthesized = {"cycleGAN": np.roll(roi, 3, axis=2), "Fproi-GAN": roi}
    roi_grid(tmp_path / "roi.png", roi, synthesized, real)
    assert png_size(tmp_path / "roi.png") == cells(columns=2, rows=N)


@pytest.mark.parametrize("exclude_background", [True, False])
def test_grey_histograms_write_a_png(tmp_path, exclude_background):
    real, methods = images()
    path = tmp_path / "hist.png"
    grey_histograms(path, real, methods, bins=32, exclude_background=exclude_background)
    assert png_size(path) == (round(2 * 4.0 * DPI), round(3.0 * DPI))


def test_bad_inputs_name_the_argument(tmp_path):
    real, methods = images()
    with pytest.raises(ValueError, match=r"roi has shape \(3, 40, 47, 1\)"):
        comparison_grid(tmp_path / "x.png", real, disks()[:, :, :47], methods)
    with pytest.raises(ValueError, match=r"inputs must have shape \(N, H, W, 1\)"):
        comparison_grid(tmp_path / "x.png", real[..., 0], disks(), methods)
    with pytest.raises(ValueError, match=r"methods\['cycleGAN'\] has shape"):
        grey_histograms(tmp_path / "x.png", real, {"cycleGAN": real[:2]})
    with pytest.raises(ValueError, match="methods must name at least one method"):
        grey_histograms(tmp_path / "x.png", real, {})
    with pytest.raises(ValueError, match="rois_real has shape"):
        roi_grid(tmp_path / "x.png", disks()[:2], {"a": disks()}, real)
    with pytest.raises(ValueError, match="real has no non-zero pixels"):
        grey_histograms(tmp_path / "x.png", np.zeros_like(real), methods)
    with pytest.raises(ValueError, match="n must be at least 1"):
        comparison_grid(tmp_path / "x.png", real, disks(), methods, n=0)
    assert not list(tmp_path.iterdir())
