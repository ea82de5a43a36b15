"""Training curves in the experiment report: the drift measure and its verdict."""
import numpy as np
import pytest

from fproi_jax.experiment import curves


def test_a_straight_line_drifts_a_third_of_its_range_and_a_settled_curve_nearly_none():
    steps = np.arange(10, 310, 10)
    assert curves.drift(steps, 5.0 - 0.01 * steps) == pytest.approx(-1 / 3, abs=0.03)
    assert curves.drift(steps, 2.0 + 0.01 * steps) == pytest.approx(1 / 3, abs=0.03)
    settled = 1.0 + 4.0 * np.exp(-steps / 30.0)
    assert abs(curves.drift(steps, settled)) < 0.01
    assert curves.drift(steps, np.full(len(steps), 0.7)) == 0.0
    assert np.isnan(curves.drift(steps[:4], settled[:4]))   # one point in the last third


def test_a_run_levelled_off_only_when_every_term_of_every_seed_did():
    steps = np.arange(10, 310, 10)
    settled = (steps, 1.0 + 4.0 * np.exp(-steps / 30.0))
    falling = (steps, 5.0 - 0.01 * steps)
    runs = {"A": [{"gen": settled, "d": settled}, {"gen": settled, "d": settled}],
            "B": [{"gen": settled, "d": settled}, {"gen": falling, "d": settled}],
            "C": [{"gen": (steps[:2], settled[1][:2]), "d": settled}]}
    levels = curves.levels(runs, {"A": ("gen", "d"), "B": ("gen", "d"), "C": ("gen", "d")})
    assert levels["A"]["levelled_off"] is True
    assert levels["B"]["levelled_off"] is False
    assert levels["B"]["drift"]["gen"][1] == pytest.approx(-1 / 3, abs=0.03)
    assert levels["C"]["levelled_off"] is None
    table = curves.table(levels)
    assert table.header == ("Method", "Drift of gen (per seed)", "Drift of d (per seed)",
                            "Levelled off")
    assert table.rows[1][1] == "-0%, -31%" and table.rows[1][-1] == "no"
    assert table.rows[2][1] == "n/a" and table.rows[2][-1].startswith("n/a")


def test_the_figure_has_a_row_per_method_and_a_panel_per_loss(tmp_path):
    steps = np.arange(1, 31)
    runs = {"A": [{"gen": (steps, steps * 1.0), "d": (steps, -steps * 1.0)}] * 3,
            "B": [{"gen": (steps, steps * 2.0)}]}
    figure = curves.figure(tmp_path / curves.FIGURE, runs)
    assert figure.path == curves.FIGURE and (tmp_path / curves.FIGURE).stat().st_size > 1000
