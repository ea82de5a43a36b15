"""--mode=classify: Table 5 groups assembled from a run's syntheses (paper section 3.2)."""
import json
import subprocess
import sys

import jax
import numpy as np

from conftest import REPO, data_flags, fresh_export, tiny_config
from fproi_jax.data import deform
from fproi_jax.tasks import pairs


def test_classify_mode_writes_table5_with_each_group(classify_brats, tmp_path):
    """A (freshly initialised) Fproi-GAN export: the plumbing, not the science. The groups
    are real only, + its F(G(x)) of every real training slice, + its F(y') of deformed ROIs;
    the classifier trains on the test split and is tested on the train split."""
    config = tiny_config(classify_brats)
    export = fresh_export(config, tmp_path / "export")
    flags = [*data_flags(classify_brats), "--config.classify.seeds=2",
             f"--config.classify.runs=Fproi-GAN={export}"]
    result = subprocess.run(
        [sys.executable, "launch.py", "--config=configs/base.py", f"--workdir={tmp_path}",
         "--mode=classify", *flags], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "classify" / "table5.json").read_text())
    groups = summary["groups"]
    assert list(groups) == ["Real only", "+ Fproi-GAN", "+ Fproi-GAN (new ROIs)"]
    real = pairs.load_slices(config, "test")  # the classifier's training slices
    n = {"HGG": int((real["group"] == 0).sum()), "LGG": int((real["group"] == 1).sum())}
    assert groups["Real only"]["n_train"] == n
    for name in ("+ Fproi-GAN", "+ Fproi-GAN (new ROIs)"):
        assert groups[name]["n_train"] == {k: 2 * v for k, v in n.items()}
        assert groups[name]["vs_baseline"]["n_seeds"] == 2
    assert groups["Real only"]["auc"]["mean"] > 0.9
    assert summary["feature_source"]["stand_in"]
    assert "| + Fproi-GAN (new ROIs) |" in result.stdout
    assert "tested on split 'train'" in summary["protocol"]
    assert summary["protocol"] in (tmp_path / "classify" / "table5.md").read_text()
    assert (tmp_path / "classify" / "figure9_roc.png").stat().st_size > 0


def test_new_rois_are_deformed_binary_masks_of_similar_area():
    yy, xx = np.mgrid[:64, :64]
    roi = (((yy - 30) ** 2 + (xx - 34) ** 2) < 144).astype(np.float32)[..., None]
    rois = np.stack([roi, roi])
    made = pairs.new_rois(rois, seed=0, alpha=34.0, sigma=4.0)
    assert made.shape == rois.shape and set(np.unique(made)) <= {0.0, 1.0}
    for new in made:
        assert abs(new.sum() - roi.sum()) < 0.2 * roi.sum()
        assert np.abs(new - roi).sum() > 20          # moved
    assert np.abs(made[0] - made[1]).sum() > 0       # one deformation per ROI
    np.testing.assert_array_equal(made, pairs.new_rois(rois, 0, 34.0, 4.0))  # seeded
    np.testing.assert_array_equal(deform.deform_roi(roi, jax.random.key(3), 0.0, 4.0), roi)
