"""Training curves of the experiment's runs: the loss curves of every method and seed, and
whether they levelled off before the runs stopped.

The curves are the scalars the train loop logs (each point the mean over the steps since
the log before), read back from each run's metrics.jsonl (store/metrics_log.py).

Levelling off, our measure (the paper reports no curves): the drift of a curve over the
last third of its steps, the change of its least-squares line across that window, as a
share of the curve's whole range (max - min over the run). A curve that still falls or
climbs as steeply as on average drifts by about a third of its range; one that has
settled drifts by little more than its noise. A curve is called levelled off when its
drift is at most LEVEL_TOLERANCE; a run, when every one of its method's progress terms
(the losses its progress bar shows) is.
"""
import numpy as np
from matplotlib.figure import Figure

from fproi_jax import atomic, results
from fproi_jax.store import metrics_log

FIGURE = "loss_curves.png"
LEVEL_TOLERANCE = 0.10
WINDOW = 1 / 3
NOT_LOSSES = ("learning_rate", "step_time_s")
PANEL_INCHES = (2.4, 1.7)
DPI = 100


def drift(steps, values) -> float:
    """The change of the least-squares line over the last WINDOW of the steps, as a share
    of the range of `values`; NaN with fewer than 3 points in the window, 0.0 for a
    constant curve."""
    steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    span = values.max() - values.min() if len(values) else 0.0
    window = steps >= steps[-1] - WINDOW * (steps[-1] - steps[0]) if len(steps) else steps
    if window.sum() < 3:
        return float("nan")
    if span == 0:
        return 0.0
    slope = np.polyfit(steps[window], values[window], 1)[0]
    return float(slope * (steps[window][-1] - steps[window][0]) / span)


def read(run_dirs: dict) -> dict:
    """{label: [curves of each seed's run]} from {label: [run dir per seed]}; the curves
    of a run are {loss: (steps, values)} without the learning rate and step time."""
    return {label: [{name: curve for name, curve in metrics_log.read(d).items()
                     if name not in NOT_LOSSES} for d in dirs]
            for label, dirs in run_dirs.items()}


def levels(curves: dict, terms: dict) -> dict:
    """{label: {'drift': {metric: [drift per seed]}, 'levelled_off': bool or None}} for
    each method's progress terms {label: (metric, ...)}; None (a drift or the verdict)
    where a run logged too few points to tell."""
    summary = {}
    for label, seeds in curves.items():
        drifts = {metric: [drift(*run[metric]) if metric in run else float("nan")
                           for run in seeds]
                  for metric in terms[label]}
        values = np.array([d for per_seed in drifts.values() for d in per_seed])
        summary[label] = {
            "drift": {m: [None if np.isnan(d) else d for d in per_seed]
                      for m, per_seed in drifts.items()},
            "levelled_off": (None if values.size == 0 or np.isnan(values).any()
                             else bool(np.all(np.abs(values) <= LEVEL_TOLERANCE)))}
    return summary


def table(summary: dict) -> results.Table:
    terms = list(dict.fromkeys(t for s in summary.values() for t in s["drift"]))

    def cell(per_seed):
        if not per_seed or None in per_seed:
            return "n/a"
        return ", ".join(f"{100 * d:+.0f}%" for d in per_seed)

    verdicts = {True: "yes", False: "no", None: "n/a (too few logged steps)"}
    return results.Table(
        "Training: did the losses level off?",
        ["Method", *(f"Drift of {t} (per seed)" for t in terms), "Levelled off"],
        [[label, *(cell(s["drift"].get(t, [])) for t in terms), verdicts[s["levelled_off"]]]
         for label, s in summary.items()],
        [f"Drift: the change of a curve's least-squares line over the last third of its "
         f"steps, as a share of the curve's range over the whole run (about +-33% for a "
         f"curve still moving as fast as on average). Levelled off: every term of every "
         f"seed within +-{100 * LEVEL_TOLERANCE:.0f}%. Each logged point is the mean loss "
         f"over the steps since the previous one."])


def figure(path, curves: dict) -> results.Figure:
    """One row per method, one panel per loss it logs (in the order of its first seed),
    one line per seed."""
    terms = {label: list(dict.fromkeys(t for run in seeds for t in run))
             for label, seeds in curves.items()}
    rows, columns = len(curves), max([len(t) for t in terms.values()] + [1])
    fig = Figure(figsize=(columns * PANEL_INCHES[0], rows * PANEL_INCHES[1]), dpi=DPI)
    axes = fig.subplots(rows, columns, squeeze=False)
    for r, (label, seeds) in enumerate(curves.items()):
        for c in range(columns):
            ax = axes[r, c]
            if c >= len(terms[label]):
                ax.set_axis_off()
                continue
            term = terms[label][c]
            for seed, run in enumerate(seeds):
                if term in run:
                    ax.plot(*run[term], linewidth=1, label=f"seed {seed}")
            ax.set_title(f"{label}: {term}", fontsize=7)
            ax.tick_params(labelsize=6)
        if terms[label]:
            axes[r, 0].legend(fontsize=6)
    fig.tight_layout(pad=0.3)
    atomic.save_figure(fig, path, dpi=DPI)
    return results.Figure("Loss curves of every method (one line per seed)", path.name)
