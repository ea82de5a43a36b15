"""The training patients of a fraction (config.data.train_fraction, and the experiment's
config.experiment.train_fractions): the low-data regime, beyond the paper.

A fraction f in (0, 1] keeps ceil(f * n) of the n patients of the training split, whole:
every slice of a kept patient and none of the others (an example without a patient is its
own, data_builders.registry). Which ones: the first ceil(f * n) of one permutation of the
sorted patient names, seeded by config.data.seed. So the subset depends on the split, the
data seed and f only (every method, seed and segmenter at f trains on the same patients),
and the subsets are nested: a smaller fraction keeps a subset of a larger one's patients.
Not stratified by group: a small fraction may shift BRATS' HGG/LGG balance.
"""
import math

import numpy as np


class FractionError(ValueError):
    """A fraction of the training patients outside (0, 1]."""


def check_fraction(fraction, field: str) -> float:
    """`fraction` as a float; FractionError naming `field` unless it is in (0, 1]."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0 < fraction <= 1:
        raise FractionError(f"{field}={fraction!r}: a fraction of the training patients must "
                            f"be in (0, 1]")
    return float(fraction)


def chosen_patients(patients, fraction: float, seed: int) -> set:
    """The ceil(fraction * n) patients of the fraction, of the n distinct `patients`."""
    names = sorted(set(patients))
    count = math.ceil(round(fraction * len(names), 9))  # 0.28 * 25 is 7, not 7.000000000000001
    order = np.random.default_rng(seed).permutation(len(names))
    return {names[i] for i in order[:count]}
