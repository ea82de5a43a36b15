"""Synthetic BRATS 2017-like cases: NIfTI t1/t1ce/t2/flair + seg, in the release layout.

Two anatomies (``write_brats(..., anatomy=...)``, CLI ``--anatomy``): "ellipse" (the
default, described here; the tiny test volumes use it) and "mni", real anatomy from the MNI
ICBM152 2009 templates shipped inside nilearn, deformed per case (see
:mod:`data_builders.phantom.mni`; same file layout, affine, z placement and special cases).

With "ellipse" each case is an ellipsoid head (thin skull, brain with smooth texture, two CSF
ventricles) with one tumour. HGG tumours are large: necrotic core (label 1), enhancing
rim (label 4, bright on t1ce), oedema (label 2). LGG tumours are smaller: core (1) and
oedema (2), no enhancement. On T2 the tumour is brighter than the brain (oedema < core).

Axial position: the tumour is centred at slice 97.5/155 of the depth, so with 155 slices
it covers the paper's slices (HGG 90, 100; LGG 90, 95, 100, 105); for smaller depths every
z quantity scales with depth (use :func:`scale_slices` for the matching indices). To
exercise the builder's tumour-free exclusion some cases are different, by case number
within the grade: case 3 (mod 5) has its tumour shifted up so the lowest paper slice is
tumour-free, and HGG case 4 (mod 7) and LGG case 1 (mod 4) have their tumour far below all
paper slices. HGG case 2 is a
second acquisition (``_2``) of the patient of HGG case 1.
"""

from __future__ import annotations

import os
import sys
import zlib
from typing import Sequence

import numpy as np
from scipy import ndimage

FULL_SHAPE = (240, 240, 155)
PAPER_DEPTH = 155
MODALITIES = ("t1", "t1ce", "t2", "flair")
ANATOMIES = ("ellipse", "mni")
# Tissue intensities (fraction of the case's maximum) per modality.
_TISSUE = {
    #             t1    t1ce  t2    flair
    "skull": (0.30, 0.30, 0.20, 0.20),
    "brain": (0.55, 0.55, 0.35, 0.40),
    "csf": (0.15, 0.15, 0.90, 0.10),
    "oedema": (0.40, 0.40, 0.70, 0.85),
    "necrosis": (0.20, 0.20, 0.95, 0.55),
    "enhancing": (0.50, 0.95, 0.60, 0.70),
}


def tumour_depth(hgg: bool, number: int, zs: float) -> tuple[float, float]:
    """(centre, half-height) of a case's tumour along z, in voxels (zs: depth / 155).

    Centred at slice 97.5 so the paper's slices cut it, except the special cases that
    exercise the builder's exclusions (by case number within the grade): HGG 4 (mod 7) and
    LGG 1 (mod 4) far below every paper slice, 3 (mod 5) shifted up past the lowest one.
    """
    r_z = (19.0 if hgg else 13.0) * zs
    if (hgg and number % 7 == 4) or (not hgg and number % 4 == 1):
        return 45.0 * zs, r_z
    if number % 5 == 3:
        return (97.5 + (17.0 if hgg else 15.0)) * zs, r_z
    return 97.5 * zs, r_z

def scale_slices(slices: Sequence[int], depth: int) -> tuple[int, ...]:
    """Paper slice indices (for 155 slices) scaled to a volume of ``depth`` slices."""
    return tuple(
        int(min(depth - 1, max(0, np.floor(k * depth / PAPER_DEPTH + 0.5)))) for k in slices
    )


def brats_affine(shape: Sequence[int]) -> np.ndarray:
    """BRATS-like voxel-to-world affine: 1 mm voxels, x and y flipped, origin offsets."""
    return np.array(
        [
            [-1.0, 0.0, 0.0, 0.0],
            [0.0, -1.0, 0.0, float(shape[1] - 1)],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], cell: int) -> np.ndarray:
    """Smooth noise in about [-1, 1], correlated over ~``cell`` voxels."""
    low = [max(2, s // cell + 2) for s in shape]
    n = rng.standard_normal(low).astype(np.float32)
    return (
        ndimage.zoom(
            n, [s / l for s, l in zip(shape, low)], order=1, grid_mode=True, mode="nearest"
        )[tuple(slice(0, s) for s in shape)]
        / 1.5
    )


def make_case(rng: np.random.Generator, grade: str, number: int, shape=FULL_SHAPE):
    """Returns ({modality: int16 volume}, uint8 seg) for one synthetic case."""
    X, Y, Z = shape
    zs = Z / PAPER_DEPTH
    x = (np.arange(X, dtype=np.float32) - (X - 1) / 2) / (X / 2)
    y = (np.arange(Y, dtype=np.float32) - (Y - 1) / 2) / (Y / 2)
    z = np.arange(Z, dtype=np.float32)
    zc_head = 75.0 * zs
    zr_head = 80.0 * zs
    zz = (z - zc_head) / zr_head
    X3, Y3, Z3 = np.meshgrid(x, y, zz, indexing="ij", sparse=True)
    head = (X3 / 0.78) ** 2 + (Y3 / 0.92) ** 2 + Z3**2
    brain_m = head <= 0.86
    skull_m = (head <= 1.0) & ~brain_m
    vent = (((X3 - 0.12) / 0.07) ** 2 + (Y3 / 0.28) ** 2 + ((Z3 - 0.05) / 0.25) ** 2 <= 1) | (
        ((X3 + 0.12) / 0.07) ** 2 + (Y3 / 0.28) ** 2 + ((Z3 - 0.05) / 0.25) ** 2 <= 1
    )
    cell = max(2, X // 16)
    tex = _smooth_noise(rng, shape, cell)
    irregular = _smooth_noise(rng, shape, max(2, X // 12))

    # Tumour geometry (in voxels), per grade.
    hgg = grade == "HGG"
    r_xy = (rng.uniform(0.17, 0.22) if hgg else rng.uniform(0.10, 0.13)) * X
    zc, r_z = tumour_depth(hgg, number, zs)
    side = rng.choice([-1.0, 1.0])
    cx = (X - 1) / 2 + side * rng.uniform(0.08, 0.16) * X
    cy = (Y - 1) / 2 + rng.uniform(-0.15, 0.15) * Y
    xi = (np.arange(X, dtype=np.float32) - cx) / r_xy
    yi = (np.arange(Y, dtype=np.float32) - cy) / r_xy
    zi = (np.arange(Z, dtype=np.float32) - zc) / r_z
    Xi, Yi, Zi = np.meshgrid(xi, yi, zi, indexing="ij", sparse=True)
    d = np.sqrt(Xi**2 + Yi**2 + Zi**2) + 0.12 * irregular
    seg = np.zeros(shape, np.uint8)
    tumour = (d <= 1.0) & brain_m
    seg[tumour] = 2
    if hgg:
        seg[(d <= 0.60) & brain_m] = 4
        seg[(d <= 0.38) & brain_m] = 1
    else:
        seg[(d <= 0.40) & brain_m] = 1

    scale = rng.uniform(900, 2500)
    vols = {}
    for mi, mod in enumerate(MODALITIES):
        v = np.zeros(shape, np.float32)
        v[skull_m] = _TISSUE["skull"][mi]
        v[brain_m] = _TISSUE["brain"][mi]
        v[brain_m & vent] = _TISSUE["csf"][mi]
        v[seg == 2] = _TISSUE["oedema"][mi]
        v[seg == 1] = _TISSUE["necrosis"][mi]
        v[seg == 4] = _TISSUE["enhancing"][mi]
        inside = head <= 1.0
        v = np.where(inside, v * (1.0 + 0.10 * tex), 0.0)
        v = np.clip(v, 0, None) * scale
        vols[mod] = np.round(v).astype(np.int16)
    return vols, seg


def case_ids(cases: int) -> list[tuple[str, str, int]]:
    """(grade, case_id, number within grade) for ``cases`` cases, about 65% HGG."""
    n_hgg = max(1, int(round(0.65 * cases))) if cases > 1 else cases
    n_lgg = cases - n_hgg
    out = []
    for i in range(n_hgg):
        if i == 2:  # second acquisition of the patient of HGG case 1
            out.append(("HGG", "Brats17_PHANTOM_H001_2", i))
        else:
            out.append(("HGG", f"Brats17_PHANTOM_H{i:03d}_1", i))
    for i in range(n_lgg):
        out.append(("LGG", f"Brats17_PHANTOM_L{i:03d}_1", i))
    return out


def write_brats(
    out_dir: str | os.PathLike,
    cases: int = 20,
    shape: Sequence[int] = FULL_SHAPE,
    seed: int = 0,
    progress: bool = False,
    anatomy: str = "ellipse",
) -> list[dict]:
    """Writes ``cases`` synthetic cases under ``out_dir/{HGG,LGG}/<case>/``.

    ``anatomy``: "ellipse" (the default: an ellipsoid head, fastest at tiny sizes) or "mni"
    (the MNI ICBM152 2009 brain shipped with nilearn, deformed per case; see
    :mod:`data_builders.phantom.mni`). With "mni" each case is seeded by (seed, case id)
    alone, so a case is the same whatever ``cases`` is; with "ellipse" by a stream drawn
    from ``seed`` in case order.

    Returns one dict per case: grade, case_id, dir, files {modality|'seg': path}, affine,
    shape, tumour_slices (axial indices whose seg has tumour).
    """
    import nibabel as nib  # pylint: disable=g-import-not-at-top

    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be 3 sizes >= 8, got {shape}")
    if anatomy not in ANATOMIES:
        raise ValueError(f"anatomy must be one of {ANATOMIES}, got {anatomy!r}")
    rng = np.random.default_rng(seed)
    affine = brats_affine(shape)
    written = []
    ids = case_ids(cases)
    for n, (grade, case_id, number) in enumerate(ids):
        case_seed = rng.integers(2**32)
        if anatomy == "mni":
            from data_builders.phantom import mni  # pylint: disable=g-import-not-at-top

            rng = np.random.default_rng([seed, zlib.crc32(case_id.encode())])
            vols, seg, _ = mni.make_case(rng, grade, number, shape)
        else:
            vols, seg = make_case(np.random.default_rng(case_seed), grade, number, shape)
        case_dir = os.path.join(os.fspath(out_dir), grade, case_id)
        os.makedirs(case_dir, exist_ok=True)
        files = {}
        for name, arr in list(vols.items()) + [("seg", seg)]:
            img = nib.Nifti1Image(arr, affine)
            img.header.set_xyzt_units("mm", "sec")
            img.set_qform(affine, code=1)
            img.set_sform(affine, code=1)
            path = os.path.join(case_dir, f"{case_id}_{name}.nii.gz")
            nib.save(img, path)
            files[name] = path
        written.append(
            dict(
                grade=grade,
                case_id=case_id,
                dir=case_dir,
                files=files,
                affine=affine,
                shape=shape,
                tumour_slices=[int(k) for k in np.nonzero(seg.any(axis=(0, 1)))[0]],
            )
        )
        if progress:
            print(
                f"[phantom brats] {n + 1}/{len(ids)} {grade}/{case_id}", file=sys.stderr, flush=True
            )
    return written
