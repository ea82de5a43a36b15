"""Logic shared by the BRATS 2017 and INbreast builders.

* :class:`BadInputError` -- the one exception for unreadable or inconsistent raw files.
  It always names the offending file.
* :class:`SkipLog` -- the ``skip_bad`` bookkeeping: either re-raise a ``BadInputError``
  or record ``(path, reason)`` so the build log and the dataset metadata list it.
* :func:`patient_split` -- the paper's 7:3 train/test split, done by patient (sorted ids,
  then a seeded permutation), so no patient is on both sides.
* :func:`balance_classes` -- sample every class down to the size of the smallest (seeded).
* :func:`check_finite`, :func:`check_not_blank` -- BadInputError for NaN/Inf values and
  for an image with no positive intensity whose ROI is not empty (black image + mask).
* :func:`max_normalise` -- linear max normalisation to [0, 1] (paper section 2.1).
* :func:`fit_to_size` -- bring an image/ROI pair to ``size x size``: centred zero padding
  when both sides fit, otherwise pad to a square and resize (image bilinear, ROI nearest).
* :func:`resize_pair` -- resize an image/ROI pair (image bilinear, ROI nearest, stays binary).
* :func:`pair_features` -- the ``image``/``roi``/``patient_id`` features every paired dataset
  declares.
* :class:`SkipBadBuilderMixin` -- the builders' ``skip_bad`` argument and ``skip_log``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterable, TypeVar

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds
from absl import logging as log  # the one channel of messages: absl logging

from fproi_jax.roi import binarise

IMAGE_SIZE = 256
TRAIN_FRACTION = 0.7
SPLIT_SEED = 0

T = TypeVar("T")


class BadInputError(Exception):
    """A raw input file that cannot be used; ``path`` names it, ``reason`` says why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across processes
        return (type(self), (self.path, self.reason))


@dataclasses.dataclass
class SkipLog:
    """Decides what happens to a :class:`BadInputError`.

    With ``skip_bad=False`` the error propagates (the build fails and names the file).
    With ``skip_bad=True`` the file is recorded in ``skipped`` (and logged) and the caller
    moves on. ``excluded`` records inputs left out by design (e.g. tumour-free slices).
    """

    skip_bad: bool = False
    skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)
    excluded: list[str] = dataclasses.field(default_factory=list)

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T | None:
        """Returns ``fn(*args, **kwargs)``, or None when it raised BadInputError and skip_bad."""
        try:
            return fn(*args, **kwargs)
        except BadInputError as e:
            if not self.skip_bad:
                raise
            self.skip(e.path, e.reason)
            return None

    def skip(self, path: str | os.PathLike, reason: str) -> None:
        entry = {"path": os.fspath(path), "reason": reason}
        if entry not in self.skipped:
            self.skipped.append(entry)
            log.warning("skipped %s: %s", entry["path"], reason)

    def exclude(self, what: str, reason: str) -> None:
        self.excluded.append(what)
        log.info("excluded %s: %s", what, reason)


class SkipBadBuilderMixin:
    """What the raw-data builders share: ``skip_bad`` handling and the manual-dir check.

    Put it before ``tfds.core.GeneratorBasedBuilder`` in the bases. Builds a
    :class:`SkipLog` in ``self._log`` (``self._skip_bad`` holds the flag) and exposes it
    as ``skip_log``; the builder's config has a ``skip_bad`` field.
    """

    def __init__(self, *, skip_bad: bool | None = None, file_format=None, **kwargs):
        """Like any tfds builder; ``skip_bad`` overrides the config's field.

        ``file_format`` defaults to array_record (readable without TensorFlow).
        """
        super().__init__(file_format=file_format or "array_record", **kwargs)
        self._skip_bad = self.builder_config.skip_bad if skip_bad is None else bool(skip_bad)
        self._log = SkipLog(self._skip_bad)

    @property
    def skip_log(self) -> SkipLog:
        return self._log

    def _manual_dir(self, dl_manager):
        """The manual dir, or a BadInputError with the download instructions."""
        try:
            return dl_manager.manual_dir
        except AssertionError as e:
            raise BadInputError(
                getattr(dl_manager, "_manual_dir", None) or "<manual_dir>",
                "manual dir does not exist or is empty\n" + self.MANUAL_DOWNLOAD_INSTRUCTIONS,
            ) from e


def pair_features(size: int) -> dict:
    """The features every paired dataset has: ``image`` float32 (size, size, 1), ``roi``
    uint8 (size, size, 1) in {0, 1}, and ``patient_id`` text."""
    return {
        "image": tfds.features.Tensor(shape=(size, size, 1), dtype=np.float32),
        "roi": tfds.features.Tensor(shape=(size, size, 1), dtype=np.uint8),
        "patient_id": tfds.features.Text(),
    }


def patient_split(
    patient_ids: Iterable[str],
    train_fraction: float = TRAIN_FRACTION,
    seed: int = SPLIT_SEED,
) -> dict[str, str]:
    """Maps each distinct patient id to 'train' or 'test'.

    The ids are sorted, permuted with ``np.random.default_rng(seed)``, and the first
    ``round(train_fraction * n)`` go to train. With two or more patients both sides get at
    least one. Deterministic: the same ids and seed give the same split on any machine.
    """
    ids = sorted(set(patient_ids))
    n = len(ids)
    if n == 0:
        return {}
    n_train = int(round(train_fraction * n))
    if n >= 2:
        n_train = min(max(n_train, 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return {ids[j]: ("train" if rank < n_train else "test") for rank, j in enumerate(perm)}


def balance_classes(
    items: dict[str, list[T]], seed: int = SPLIT_SEED
) -> dict[str, list[T]]:
    """Samples every class of ``items`` down to the size of the smallest class, without
    replacement; the smallest class (and any other of that size) is kept whole.

    Each class's items are sorted first and sampled with ``np.random.default_rng(seed)``
    (classes in sorted order, one generator), so the result depends only on the items and
    the seed. The kept items are returned in sorted order.
    """
    if not items:
        return {}
    n = min(len(v) for v in items.values())
    rng = np.random.default_rng(seed)
    out = {}
    for name in sorted(items):
        v = sorted(items[name])
        if len(v) > n:
            keep = np.sort(rng.choice(len(v), size=n, replace=False))
            v = [v[i] for i in keep]
        out[name] = v
    return out


def max_normalise(x: np.ndarray) -> np.ndarray:
    """``x / max(x)`` as float32 in [0, 1]; negative values clip to 0; all-zero stays zero."""
    x = np.asarray(x, dtype=np.float32)
    x = np.maximum(x, 0.0)
    m = float(x.max()) if x.size else 0.0
    if not np.isfinite(m):
        raise ValueError("non-finite intensities")
    if m <= 0.0:
        return np.zeros_like(x)
    return np.clip(x / m, 0.0, 1.0).astype(np.float32)


def check_finite(path: str | os.PathLike, x: np.ndarray, what: str) -> None:
    """BadInputError naming ``path`` if ``x`` (``what``, e.g. "the volume") holds NaN or Inf."""
    n = int(x.size - np.count_nonzero(np.isfinite(x)))
    if n:
        raise BadInputError(path, f"non-finite values (NaN or Inf) in {what}: {n} of {x.size}")


def check_not_blank(path: str | os.PathLike, image: np.ndarray, what: str) -> None:
    """BadInputError naming ``path`` if ``image`` (``what``, whose ROI is not empty) has no
    positive value: max normalisation would pair a black image with a tumour mask."""
    if not np.any(image > 0):
        raise BadInputError(path, f"{what} has no positive intensity, but its ROI is not empty")


def resize_pair(image: np.ndarray, roi: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resizes 2-D ``image`` (bilinear, float32) and ``roi`` (binarised by
    fproi_jax.roi.binarise, then nearest: binary uint8) to size x size."""
    img = Image.fromarray(np.asarray(image, np.float32), mode="F")
    img = np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.float32)
    r = Image.fromarray(binarise(np.asarray(roi)).astype(np.uint8), mode="L")
    r = np.asarray(r.resize((size, size), Image.NEAREST), dtype=np.uint8)
    return img, r


def pad_to(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Centred zero padding of a 2-D array up to h x w (extra pixel, if odd, at the end)."""
    dh, dw = h - x.shape[0], w - x.shape[1]
    if dh < 0 or dw < 0:
        raise ValueError(f"cannot pad {x.shape} to {(h, w)}")
    return np.pad(x, ((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)))


def fit_to_size(
    image: np.ndarray, roi: np.ndarray, size: int = IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Brings a 2-D image/ROI pair to size x size, keeping them aligned.

    If both sides are <= size: centred zero padding (BRATS 240x240 -> 8 px on each side;
    pixels are untouched and the ROI stays exactly the source mask). Otherwise: centred zero
    padding to a square of the longer side, then resize (image bilinear, ROI nearest
    neighbour so it stays binary). The ROI is binarised first (fproi_jax.roi.binarise: above
    0.5). Returns (float32 image, uint8 ROI in {0, 1}).
    """
    image = np.asarray(image, np.float32)
    roi = binarise(np.asarray(roi)).astype(np.uint8)
    if image.shape != roi.shape or image.ndim != 2:
        raise ValueError(f"image {image.shape} and ROI {roi.shape} must be equal 2-D shapes")
    h, w = image.shape
    if h <= size and w <= size:
        return pad_to(image, size, size), pad_to(roi, size, size)
    s = max(h, w)
    return resize_pair(pad_to(image, s, s), pad_to(roi, s, s), size)


def as_channel(x: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W, 1)."""
    return x[..., None]
