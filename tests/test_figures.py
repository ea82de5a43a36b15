"""Figures: what each figure shows (grid cells, histogram values), PNG sizes, argument checks."""
from matplotlib.colors import to_rgba
import numpy as np
import pytest
from PIL import Image

from conftest import grid_cells
from fproi_jax.evaluation.figures import (
    CELL_INCHES,
    DPI,
    comparison_grid,
    grey_histograms,
    histogram_fractions,
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



def box(mask, margin=8):
    """Bounding box of a 2-D mask grown by margin, clipped; the whole image when empty."""
    if not mask.any():
        return slice(None), slice(None)
    rows, cols = np.nonzero(mask)
    return (slice(max(rows.min() - margin, 0), min(rows.max() + 1 + margin, mask.shape[0])),
            slice(max(cols.min() - margin, 0), min(cols.max() + 1 + margin, mask.shape[1])))


def test_comparison_grid_cells_are_the_inputs_the_methods_and_their_tumour_regions(tmp_path):
    real, methods = images()
    roi = disks()
    figure = comparison_grid(tmp_path / "grid.png", real, roi, methods, n=5)
    axes, cells = grid_cells(figure, columns=3)
    assert cells.shape == (2 * N, 3)
    assert [ax.get_title() for ax in axes[0]] == ["Input", "cycleGAN", "Fproi-GAN"]
    for i in range(N):
        whole = [real[i, ..., 0], *(m[i, ..., 0] for m in methods.values())]
        region = box(roi[i, ..., 0] > 0.5)
        assert axes[2 * i, 0].get_ylabel() == f"example {i}"
        for c, image in enumerate(whole):
            np.testing.assert_array_equal(cells[2 * i, c], image, err_msg=f"example {i} col {c}")
            np.testing.assert_array_equal(cells[2 * i + 1, c], (image * roi[i, ..., 0])[region],
                                          err_msg=f"example {i} tumour col {c}")
    assert cells[1, 0].shape == (25, 27) and cells[5, 0].shape == (H, W)  # cropped / no ROI


def test_roi_grid_cells_are_the_images_with_real_and_synthesized_outlines(tmp_path):
    real, _ = images()
    roi = disks()
    synthesized = {"cycleGAN": np.roll(roi, -3, axis=2), "Fproi-GAN": roi}  # 3 px left
    figure = roi_grid(tmp_path / "roi.png", roi, synthesized, real)
    axes, cells = grid_cells(figure, columns=2)
    assert cells.shape == (N, 2)
    assert [ax.get_title() for ax in axes[0]] == ["cycleGAN", "Fproi-GAN"]
    for (i, c), image in np.ndenumerate(cells):
        np.testing.assert_array_equal(image, real[i, ..., 0], err_msg=f"example {i} col {c}")
        outlines = axes[i, c].collections
        if i == 2:  # no tumour: nothing outlined
            assert not outlines
            continue
        real_outline, synthesized_outline = outlines
        np.testing.assert_allclose(real_outline.get_edgecolor()[0], to_rgba("lime"))
        np.testing.assert_allclose(synthesized_outline.get_edgecolor()[0], to_rgba("red"))
        # each outline goes round its own disk: the centre column is the disk's, x = column
        centre = [(12, 10), (40, 30)][i]
        shift = -3 if c == 0 else 0
        for outline, dx in ((real_outline, 0), (synthesized_outline, shift)):
            vertices = np.concatenate([p.vertices for p in outline.get_paths()])
            np.testing.assert_allclose(vertices.mean(axis=0), (centre[0] + dx, centre[1]),
                                       atol=1.0)


def test_histogram_fractions_leave_out_the_real_background():
    real = np.zeros((2, 2, 4, 1), np.float32)
    real[0, 0] = [[0.1], [0.3], [0.35], [0.0]]
    real[1, 1] = [[0.6], [0.9], [1.0], [0.0]]  # 6 non-zero pixels, 10 zeros
    synth = np.full_like(real, 0.95)  # bright where the real background is
    synth[real > 0] = np.array([0.05, 0.3, 0.55, 0.55, 0.8, 0.2])
    edges, fractions, methods = histogram_fractions(real, {"A": synth}, bins=4)
    np.testing.assert_allclose(edges, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(fractions, np.array([1, 2, 1, 2]) / 6)
    np.testing.assert_allclose(methods["A"], np.array([2, 1, 2, 1]) / 6)
    kept = real > 0
    np.testing.assert_allclose(fractions, np.histogram(real[kept], 4, (0, 1))[0] / 6)
    np.testing.assert_allclose(methods["A"], np.histogram(synth[kept], 4, (0, 1))[0] / 6)
    # with the background: every pixel, real zeros in the first bin
    _, fractions, methods = histogram_fractions(real, {"A": synth}, 4, exclude_background=False)
    np.testing.assert_allclose(fractions, np.array([11, 2, 1, 2]) / 16)
    np.testing.assert_allclose(methods["A"], np.array([2, 1, 2, 11]) / 16)
    np.testing.assert_allclose(fractions, np.histogram(real, 4, (0, 1))[0] / 16)


@pytest.mark.parametrize("exclude_background", [True, False])
def test_grey_histograms_draw_the_histogram_fractions(tmp_path, exclude_background):
    real, methods = images()
    edges, fractions, expected = histogram_fractions(real, methods, 32, exclude_background)
    figure = grey_histograms(tmp_path / "hist.png", real, methods, bins=32,
                             exclude_background=exclude_background)
    assert len(figure.axes) == len(methods)
    for ax, (name, method_fractions) in zip(figure.axes, expected.items()):
        assert ax.get_title() == name
        drawn = [patch.get_data() for patch in ax.patches]
        assert len(drawn) == 2 and [t.get_text() for t in ax.get_legend().get_texts()] == [
            "real", name]
        for (values, drawn_edges, _), want in zip(drawn, (fractions, method_fractions)):
            np.testing.assert_allclose(drawn_edges, edges)
            np.testing.assert_allclose(values, want)

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
