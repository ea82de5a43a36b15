"""config.experiment.train_fractions: every method, seed and segmenter trained on a seeded
subset of the training patients (data/patient_subset.py), Table 6 at each fraction."""
import json
import logging
import math

import numpy as np
import pytest

from conftest import tiny_config
from fproi_jax import results
from fproi_jax.data import patient_subset, pipeline
from fproi_jax.experiment import grid
from fproi_jax.methods import get_method
from fproi_jax.store import config_file
from fproi_jax.tasks import segmentation


def _train_columns(data):
    return pipeline.concatenate(pipeline.eval_batches(
        pipeline.load_split(data, data.train_split), data, 8))


def _patients_and_positions(data):
    """(patient, position in the whole split, id) of each example of data's train split."""
    columns = _train_columns(data)
    return list(columns["patient_id"]), list(columns["index"]), list(columns["example_id"])


def _at(data, fraction):
    data = data.copy_and_resolve_references()
    data.train_fraction = fraction
    return data


def test_the_patients_of_a_fraction_are_seeded_counted_and_nested():
    patients = [f"p{i % 10}" for i in range(40)]      # 10 patients, 4 slices each
    chosen = {f: patient_subset.chosen_patients(patients, f, seed=0)
              for f in (0.1, 0.25, 0.5, 0.7, 1.0)}
    assert {f: len(c) for f, c in chosen.items()} == {0.1: 1, 0.25: 3, 0.5: 5, 0.7: 7, 1.0: 10}
    assert chosen[0.1] <= chosen[0.25] <= chosen[0.5] <= chosen[0.7] <= chosen[1.0]
    # ceil(0.28 * 25) of 25 patients is 7, though 0.28 * 25 = 7.000000000000001
    assert len(patient_subset.chosen_patients(range(25), 0.28, seed=0)) == 7
    assert chosen[1.0] == set(patients)
    assert patient_subset.chosen_patients(list(reversed(patients)), 0.5, seed=0) == chosen[0.5]
    others = [patient_subset.chosen_patients(patients, 0.5, seed=s) for s in range(1, 6)]
    assert any(other != chosen[0.5] for other in others)


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, True, "0.5"])
def test_a_fraction_outside_0_1_is_refused_naming_the_field(fraction):
    with pytest.raises(patient_subset.FractionError,
                       match=r"data.train_fraction=.*must be in \(0, 1\]"):
        patient_subset.check_fraction(fraction, "data.train_fraction")


def test_the_training_split_at_a_fraction_holds_only_its_patients_whole(tiny_brats):
    patients, positions, ids = _patients_and_positions(tiny_brats)
    assert positions == list(range(len(patients)))
    half = _at(tiny_brats, 0.5)
    kept = patient_subset.chosen_patients(patients, 0.5, tiny_brats.seed)
    assert len(kept) == math.ceil(len(set(patients)) / 2) < len(set(patients))
    sub_patients, sub_positions, sub_ids = _patients_and_positions(half)
    # every slice of a kept patient, none of the others, each with its id in the whole split
    assert sub_positions == [i for i, p in enumerate(patients) if p in kept]
    assert sub_patients == [patients[i] for i in sub_positions]
    assert sub_ids == [ids[i] for i in sub_positions]
    # the GAN training stream reads only those examples: its pixels are theirs (sums, as
    # the stream flips some)
    source = pipeline.load_split(half, half.train_split)
    stream = iter(pipeline.train_dataset(source, half, 4))
    subset = _train_columns(half)
    seen = set()
    for _ in range(6):
        batch = next(stream)
        for key in ("image", "roi"):
            np.testing.assert_allclose(batch[key].sum(axis=(1, 2, 3)),
                                       subset[key][batch["index"]].sum(axis=(1, 2, 3)),
                                       rtol=1e-5)
        seen |= {int(i) for i in batch["index"]}
    assert seen == set(range(len(sub_positions)))
    # the test split is not cut
    test = pipeline.load_split(half, half.test_split)
    assert len(test) == len(pipeline.load_split(tiny_brats, tiny_brats.test_split))


def test_a_run_from_before_train_fraction_is_the_same_run_and_another_fraction_is_not(
        tiny_brats, tmp_path):
    config = tiny_config(tiny_brats.copy_and_resolve_references())
    stored = config_file.as_json(config)
    del stored["data"]["train_fraction"]
    (tmp_path / config_file.CONFIG).write_text(json.dumps(stored))
    assert config_file.check(config, tmp_path, strict=True) == {}
    assert config_file.load(tmp_path).data.train_fraction == 1.0  # and it loads as such
    config.data.train_fraction = 0.5
    with pytest.raises(config_file.ConfigMismatchError,
                       match=r"data.train_fraction: the run has '<absent>', this command "
                             r"gives 0.5"):
        config_file.check(config, tmp_path, strict=True)


def test_a_fproi_gan_run_from_before_its_options_loads_and_is_the_same_run(tiny_brats, tmp_path):
    config = tiny_config(tiny_brats.copy_and_resolve_references(), "fproi_gan")
    stored = config_file.as_json(config)
    for name in ("fproi_gan", "fproi_gan_context"):
        for field in ("image_discriminator", "gan_mode", "image_generator"):
            del stored["model"][name][field]
    (tmp_path / config_file.CONFIG).write_text(json.dumps(stored))
    assert config_file.check(config, tmp_path, strict=True) == {}
    loaded = config_file.load(tmp_path)
    assert loaded.model.fproi_gan.image_discriminator == "figure5"
    assert get_method(loaded).gan_mode == "log"
    config.model.fproi_gan.image_discriminator = "patch_gan"
    with pytest.raises(config_file.ConfigMismatchError, match="image_discriminator"):
        config_file.check(config, tmp_path, strict=True)


@pytest.mark.parametrize("change, message", [
    ({"train_fractions": (0.0, 1.0)}, r"train_fractions=\(0.0, 1.0\).*must be in \(0, 1\]"),
    ({"train_fractions": (0.5, 0.5)}, r"train_fractions=\(0.5, 0.5\) must name at least one "
                                      r"fraction, none twice"),
    ({"train_fractions": ()}, r"must name at least one fraction"),
    ({"only": "fraction_0.25/fproi_gan/seed_0"},
     r"choose one of fraction_0.5/fproi_gan/seed_0, fproi_gan/seed_0$"),
])
def test_bad_fractions_are_refused_before_anything_is_written(tiny_brats, tmp_path, change,
                                                              message):
    config = tiny_config(tiny_brats)
    config.experiment.methods = ("fproi_gan",)
    config.experiment.train_fractions = (0.5, 1.0)
    config.experiment.update(change)
    with pytest.raises(config_file.InvalidConfigError, match=message):
        grid.run(config, tmp_path)
    assert not any(tmp_path.iterdir())


def test_the_experiment_refuses_a_data_train_fraction_of_its_own(tiny_brats, tmp_path):
    config = tiny_config(_at(tiny_brats, 0.5))
    with pytest.raises(config_file.InvalidConfigError,
                       match="data.train_fraction=0.5: the experiment sets it for each run"):
        grid.run(config, tmp_path)


def test_a_fraction_too_small_for_an_epoch_is_refused_naming_it(tiny_brats, tmp_path):
    config = tiny_config(tiny_brats)
    config.train.num_steps = None
    config.train.batch_size = 8
    config.experiment.train_fractions = (0.2, 1.0)
    with pytest.raises(config_file.InvalidConfigError,
                       match=r"at fraction 0.2 of the training patients, train.batch_size=8 "
                             r"exceeds the \d training examples"):
        grid.run(config, tmp_path)


def test_an_experiment_at_two_fractions_trains_into_their_folders_and_reports_table6_at_each(
        tiny_brats, tmp_path, caplog):
    config = tiny_config(tiny_brats)
    config.train.num_steps = 1
    config.experiment.methods = ("fproi_gan",)
    config.experiment.tasks = ("segmentation",)
    config.experiment.train_fractions = (0.5, 1.0)
    summary = grid.run(config, tmp_path)

    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("**/seed_*")) == [
        "fproi_gan/seed_0", "fraction_0.5/fproi_gan/seed_0"]
    stored = {f: json.loads((grid.run_dir(tmp_path, "fproi_gan", 0, f) / "config.json")
                            .read_text())["data"]["train_fraction"] for f in (0.5, 1.0)}
    assert stored == {0.5: 0.5, 1.0: 1.0}
    assert summary["train_fractions"] == [0.5, 1.0]
    assert summary["runs"] == {"Fproi-GAN": ["fproi_gan/seed_0/eval/Fproi-GAN"]}

    patients, _, _ = _patients_and_positions(tiny_brats)
    kept = patient_subset.chosen_patients(patients, 0.5, tiny_brats.seed)
    table6 = summary["tasks"]["segmentation"]["fractions"]
    assert list(table6) == ["0.5", "1"]
    assert table6["0.5"]["train"] == {"n": sum(p in kept for p in patients),
                                      "n_patients": len(kept), "fraction": 0.5}
    assert table6["1"]["train"] == {"n": len(patients), "n_patients": len(set(patients)),
                                    "fraction": 1.0}
    for key, fraction in (("0.5", 0.5), ("1", 1.0)):
        groups = table6[key]["groups"]
        assert groups["Real only"]["n_train"] == table6[key]["train"]["n"]
        assert groups["Fproi-GAN only"]["n_train"] == 2 * table6[key]["train"]["n"]
        run = grid.run_dir(tmp_path, "fproi_gan", 0, fraction)
        assert f"Fproi-GAN={run}" in table6[key]["protocol"]
    assert f"(fraction 0.5 of its patients, {len(kept)} patients)" in table6["0.5"]["protocol"]

    out = tmp_path / "report"
    written = json.loads((out / "summary.json").read_text())
    assert written["train_fractions"] == [0.5, 1.0]
    assert {key: f["train"] for key, f in written["tasks"]["segmentation"]["fractions"].items()
            } == {key: f["train"] for key, f in table6.items()}
    for scores in ("segmentation/fraction_0.5/scores.npz", "segmentation/scores.npz"):
        assert (out / scores).is_file()
    page = (out / "index.html").read_text()
    for key in ("0.5", "1"):
        n = table6[key]["train"]["n_patients"]
        assert (f"<h2>Table 6: tumour segmentation trained with and without synthesized pairs, "
                f"at fraction {key} of the training patients ({n} patients)</h2>") in page
    assert '<img src="segmentation/dice_per_group_by_fraction.png"' in page
    assert (out / "segmentation" / "dice_per_group_by_fraction.png").stat().st_size > 1000
    assert "Table 6) are given at each fraction; the verdict, Tables 1-4 and Table 5 are of " \
           "the runs at fraction 1, all of them" in page

    # one cell again as a job array's job: named by its folder, found trained
    config.experiment.only = "fraction_0.5/fproi_gan/seed_0"
    with caplog.at_level(logging.INFO):
        done = grid.run(config, tmp_path)
    assert done["eval_dir"] == str(tmp_path / "fraction_0.5/fproi_gan/seed_0/eval/Fproi-GAN")
    assert "fproi_gan seed 0 already trained (step 1), skipping training" in caplog.text


def test_the_dice_figure_draws_each_fraction_beside_the_others(tmp_path):
    def summary(level):
        return {"groups": {name: {"dice": {"mean": level + d, "low": level + d - 0.05,
                                           "high": level + d + 0.05}}
                           for name, d in ((segmentation.REAL, 0.0), ("+ copy-paste", 0.1))}}
    figure = segmentation._figure(tmp_path / "f.png", {"fraction 0.25": summary(0.3),
                                                       "fraction 1": summary(0.6)})
    assert (tmp_path / "f.png").stat().st_size > 1000
    (ax,) = figure.axes
    bars = sorted(((b.get_y() + b.get_height() / 2, b.get_width(), b.get_facecolor())
                   for b in ax.patches), reverse=True)   # top to bottom
    # real only on top, copy-paste below; in each row fraction 0.25 above fraction 1
    np.testing.assert_allclose([width for _, width, _ in bars], [0.3, 0.6, 0.4, 0.7])
    assert bars[0][2] == bars[2][2] != bars[1][2] == bars[3][2]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "Real only, fraction 0.25", "Real only, fraction 1", "fraction 0.25", "fraction 1"]


def test_table6_by_fraction_titles_each_fractions_tables_and_says_which_were_skipped(tmp_path):
    def result(level, n_patients):
        summary = {"train": {"n_patients": n_patients},
                   "groups": {segmentation.REAL: {"dice": {"mean": level, "low": level - 0.1,
                                                           "high": level + 0.1}}}}
        return results.Result([results.Table("Table 6", ["a"], [["1"]], ["note"])],
                              [segmentation.FIGURE], summary)
    done = {0.25: result(0.4, 2), 0.5: results.Result(skipped="too few"), 1.0: result(0.8, 7)}
    combined = segmentation.by_fraction(tmp_path, done)
    assert [t.title for t in combined.tables] == [
        "Table 6, at fraction 0.25 of the training patients (2 patients)",
        "Table 6, at fraction 1 of the training patients (7 patients)"]
    assert combined.tables[-1].notes == ("note", "Not run at fraction 0.5: too few")
    assert combined.summary == {"fractions": {"0.25": done[0.25].summary,
                                              "0.5": {"skipped": "too few"},
                                              "1": done[1.0].summary}}
    assert combined.figures == [segmentation.BY_FRACTION]
    assert (tmp_path / segmentation.BY_FRACTION.path).stat().st_size > 1000
    nothing = segmentation.by_fraction(tmp_path, {0.5: results.Result(skipped="too few")})
    assert nothing.skipped == "fraction 0.5: too few"
