"""BRATS phantom cases on real anatomy: the MNI ICBM152 2009a (nonlinear, symmetric) templates.

The templates ship inside the nilearn package (``nilearn/datasets/data/``, 197x233x189 at
1 mm, RAS, skull-stripped T1 and grey/white-matter probability maps); they are read from
that folder with nibabel, never through a ``fetch_*`` function, so nothing is downloaded.

Template -> BRATS grid (240x240x155, 1 mm, the affine of :func:`brats.brats_affine`, LPS):
x and y are flipped (RAS -> LPS), the brain's bounding box is centred in x and y, and BRATS
slice k is template slice k - 4 (the brain fills slices ~5-154, its last ~3 mm at the vertex
cut; the paper's slices 90-105 pass through the bodies of the lateral ventricles and the
corpus callosum). Other shapes resample that grid linearly (every z quantity scales with
depth, as in the ellipse phantom).

Tissue maps: GM and WM are the template's probabilities; the brain mask is the filled
T1 > 2% region; CSF = mask * clip(1 - GM - WM, 0, 1) (ventricles, sulci). Each modality is
the mixture ``sum_t p_t * c[mod][t]`` with the contrasts c (fraction of the case's gain)::

               GM    WM    CSF
    t1        0.55  0.80  0.20
    t1ce      0.55  0.80  0.20
    t2        0.55  0.40  0.95     (T2-like: CSF bright, grey above white matter)
    flair     0.60  0.45  0.08     (CSF suppressed)

Tumour voxels take the sub-region's value instead (see ``_TUMOUR``): oedema (2) bright on
T2/FLAIR, HGG necrotic core (1) brightest on T2 and dark on T1, enhancing rim (4) bright on
t1ce; the LGG core (1) is non-enhancing, moderately T2-bright.

Per case, all seeded by (seed, case index): a smooth random deformation (a random
per-axis scale of +-6% about the centre plus a displacement field of a few mm, a sum of
separable smooth products, applied with ``scipy.ndimage.map_coordinates``, order 1), an
optional left-right flip, a gain (900-2500, +-10% per modality), a smooth multiplicative
bias field (+-~15%), and Rician noise (sigma 2-4% of the gain) where there is tissue; the
background stays 0 as in the skull-stripped BRATS release.

Tumours lie inside the deformed brain mask, centred on a brain voxel of the centre slice
far from the mask's edge, in a random hemisphere. HGG: radius 0.13-0.17 of X (oedema),
enhancing rim (4) inside d <= 0.62, necrotic core (1) inside d <= 0.40, with an irregular
boundary; LGG: radius 0.08-0.11 of X, no enhancement, a small non-enhancing core (1, d <=
0.30) and a more diffuse, more irregular oedema. Oedema fades into the surrounding tissue
towards its edge (LGG over the outer 40% of its radius down to 35% strength; HGG over 15%,
down to 70%); the labels are not faded. z placement and the special cases are
those of the ellipse phantom (see :mod:`brats`).
"""

from __future__ import annotations

import functools
import os

import numpy as np
from scipy import ndimage

from data_builders.phantom.brats import tumour_depth

FULL_SHAPE = (240, 240, 155)
PAPER_DEPTH = 155
MODALITIES = ("t1", "t1ce", "t2", "flair")
Z_OFFSET = 4  # BRATS slice k <-> template slice k - Z_OFFSET
TEMPLATES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
#                 GM    WM    CSF
_TISSUE = {
    "t1": (0.55, 0.80, 0.20),
    "t1ce": (0.55, 0.80, 0.20),
    "t2": (0.55, 0.40, 0.95),
    "flair": (0.60, 0.45, 0.08),
}
#                      t1    t1ce  t2    flair
_TUMOUR = {
    "oedema": (0.45, 0.45, 0.78, 0.88),
    "necrosis": (0.22, 0.24, 0.98, 0.50),
    "enhancing": (0.55, 1.00, 0.62, 0.70),
    "lgg_core": (0.38, 0.38, 0.88, 0.72),
}


def template_dir() -> str:
    """nilearn's packaged data folder (no network: the files ship with the wheel)."""
    import importlib.util  # pylint: disable=g-import-not-at-top

    spec = importlib.util.find_spec("nilearn")  # located, not imported: no nilearn code runs
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the MNI phantom needs nilearn==0.14.1 (requirements.txt) for its templates"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")


@functools.lru_cache(maxsize=1)
def tissue_maps() -> np.ndarray:
    """(3, 240, 240, 155) float32 GM, WM, CSF probabilities on the BRATS grid (cached)."""
    import nibabel as nib  # pylint: disable=g-import-not-at-top

    d = template_dir()
    maps = {}
    for name, f in TEMPLATES.items():
        path = os.path.join(d, f)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} is missing: the MNI phantom needs nilearn==0.14.1, whose package "
                "ships the ICBM152 2009 templates"
            )
        maps[name] = np.asarray(nib.load(path).dataobj, dtype=np.float32) / 255.0
    mask = ndimage.binary_fill_holes(maps["t1"] > 0.02)
    gm, wm = maps["gm"] * mask, maps["wm"] * mask
    csf = mask * np.clip(1.0 - gm - wm, 0.0, 1.0)
    stack = np.stack([gm, wm, csf])[:, ::-1, ::-1, :]  # RAS -> LPS (the BRATS affine)
    bx = np.nonzero(mask.any(axis=(1, 2)))[0]
    by = np.nonzero(mask.any(axis=(0, 2)))[0]
    X, Y, Z = FULL_SHAPE
    out = np.zeros((3,) + FULL_SHAPE, np.float32)
    # Centre the brain's bounding box in x and y (after the flip).
    nx, ny, nz = mask.shape
    x0 = (X - (nx - 1 - bx.min() + nx - 1 - bx.max() + 1)) // 2  # flipped x -> BRATS x
    y0 = (Y - (ny - 1 - by.min() + ny - 1 - by.max() + 1)) // 2
    sx = slice(max(0, -x0), min(nx, X - x0))
    sy = slice(max(0, -y0), min(ny, Y - y0))
    sz = slice(max(0, -Z_OFFSET), min(nz, Z - Z_OFFSET))
    out[
        :,
        sx.start + x0 : sx.stop + x0,
        sy.start + y0 : sy.stop + y0,
        sz.start + Z_OFFSET : sz.stop + Z_OFFSET,
    ] = stack[:, sx, sy, sz]
    return out


@functools.lru_cache(maxsize=1)
def _box() -> tuple[list[int], list[int]]:
    """(lo, hi) per axis of the tissue maps' nonzero region on the full grid."""
    occupied = tissue_maps().sum(axis=0) > 0.0
    axes = ((1, 2), (0, 2), (0, 1))
    lo = [int(np.nonzero(occupied.any(axis=a))[0].min()) for a in axes]
    hi = [int(np.nonzero(occupied.any(axis=a))[0].max()) + 1 for a in axes]
    return lo, hi


def _smooth1d(rng: np.random.Generator, n: int, knots: int) -> np.ndarray:
    """A smooth 1-D random function on n points, about [-1, 1], with ``knots`` knots."""
    k = rng.uniform(-1.0, 1.0, knots + 2)
    return np.interp(np.linspace(0, knots + 1, n), np.arange(knots + 2), k).astype(np.float32)


def _separable_field(rng, shape, terms=3, knots=3) -> np.ndarray:
    """A smooth 3-D field, about [-1, 1]: a mean of separable products (broadcast, cheap)."""
    X, Y, Z = shape
    f = None
    for _ in range(terms):
        a = _smooth1d(rng, X, knots)[:, None, None]
        b = _smooth1d(rng, Y, knots)[None, :, None]
        c = _smooth1d(rng, Z, knots)[None, None, :]
        t = a * b * c
        f = t if f is None else f + t
    return f * (1.5 / terms)


def _blur_noise(rng, shape, cell):
    low = [max(2, s // cell + 2) for s in shape]
    n = rng.standard_normal(low).astype(np.float32)
    return (
        ndimage.zoom(n, [s / l for s, l in zip(shape, low)], order=1, grid_mode=True,
                     mode="nearest")[tuple(slice(0, s) for s in shape)]
        / 1.5
    )


def make_case(
    rng: np.random.Generator, grade: str, number: int, shape=FULL_SHAPE, return_tissue=False
):
    """({modality: int16 volume}, uint8 seg, tissue) of one case.

    ``tissue``: with ``return_tissue``, the (3, *shape) float32 GM/WM/CSF probabilities
    (deformed, flipped) the volumes were mixed from; else None.
    """
    maps = tissue_maps()
    X, Y, Z = shape
    FX, FY, FZ = FULL_SHAPE
    zs = Z / PAPER_DEPTH
    # Output voxel -> full-grid source coordinate: resample, scale about the centre, displace.
    scale = rng.uniform(0.94, 1.06, 3)
    amp = rng.uniform(2.0, 5.0, 3)  # mm of the smooth displacement, per axis
    cx, cy, cz = (FX - 1) / 2, (FY - 1) / 2, 80.0
    gx = (np.arange(X, dtype=np.float32) + 0.5) * (FX / X) - 0.5
    gy = (np.arange(Y, dtype=np.float32) + 0.5) * (FY / Y) - 0.5
    gz = (np.arange(Z, dtype=np.float32) + 0.5) * (FZ / Z) - 0.5
    # Only the brain's bounding box (with a margin) is interpolated; the rest is 0.
    margin = 12
    lo, hi = _box()
    lo = [max(0, v - margin) for v in lo]
    hi = [min(s, v + margin) for s, v in zip(FULL_SHAPE, hi)]
    src = [(g - c) / s + c for g, c, s in zip((gx, gy, gz), (cx, cy, cz), scale)]
    # Output indices whose undeformed source lies in the box (plus margin for displacement).
    sel = [np.nonzero((s >= l) & (s < h))[0] for s, l, h in zip(src, lo, hi)]
    ox = slice(sel[0].min(), sel[0].max() + 1)
    oy = slice(sel[1].min(), sel[1].max() + 1)
    oz = slice(sel[2].min(), sel[2].max() + 1) if len(sel[2]) else slice(0, 0)
    sub = (ox.stop - ox.start, oy.stop - oy.start, oz.stop - oz.start)
    if min(sub) == 0:
        raise ValueError(f"shape {shape} holds no brain")
    coords = np.empty((3,) + sub, np.float32)
    for a, (s, o) in enumerate(zip(src, (ox, oy, oz))):
        shp = [1, 1, 1]
        shp[a] = -1
        coords[a] = s[o].reshape(shp)
        coords[a] += amp[a] * _separable_field(rng, sub)
    # Everything below is computed on the box (offset o0); outside it the case is 0.
    tb = np.stack([
        ndimage.map_coordinates(maps[t], coords, order=1, prefilter=False, mode="constant",
                                cval=0.0)
        for t in range(3)
    ])
    del coords
    mask_soft = tb.sum(axis=0)
    brain = mask_soft > 0.5

    # Tumour geometry (in voxels), per grade; z placement as in the ellipse phantom.
    hgg = grade == "HGG"
    r_xy = (rng.uniform(0.13, 0.17) if hgg else rng.uniform(0.08, 0.11)) * X
    zc, r_z = tumour_depth(hgg, number, zs)
    kz = int(min(oz.stop - 1, max(oz.start, round(zc)))) - oz.start
    side = rng.choice([-1.0, 1.0])
    sl = brain[:, :, kz]
    gap = max(1, X // 10)  # the centre keeps off the midline
    xs_full = np.arange(sub[0]) + ox.start
    half = (xs_full >= (X + 1) // 2 + gap) if side > 0 else (xs_full < X // 2 - gap)
    edt = ndimage.distance_transform_edt(np.pad(sl, 1))[1:-1, 1:-1]
    edt_h = edt * half[:, None]
    if edt_h.max() <= 0:
        edt_h = edt
    want = min(0.55 * r_xy, 0.8 * edt_h.max())
    cand = np.argwhere(edt_h >= max(want, 1e-6))
    if len(cand) == 0:
        cand = np.array([[sub[0] // 2, sub[1] // 2]])
    tx, ty = cand[rng.integers(len(cand))]
    tzc = zc - oz.start
    # The tumour's own box (d <= 1 needs |offset| <= r (1 + irregularity)).
    reach = 1.5
    tlo = [max(0, int(np.floor(c - reach * r))) for c, r in zip((tx, ty, tzc), (r_xy, r_xy, r_z))]
    thi = [min(n, int(np.ceil(c + reach * r)) + 1)
           for n, c, r in zip(sub, (tx, ty, tzc), (r_xy, r_xy, r_z))]
    seg_b = np.zeros(sub, np.uint8)
    tsl, texture = None, None
    if all(h > l for l, h in zip(tlo, thi)):
        tshape = tuple(h - l for l, h in zip(tlo, thi))
        irregular = _blur_noise(rng, tshape, max(2, X // (12 if hgg else 20)))
        xi = (np.arange(tlo[0], thi[0], dtype=np.float32) - tx) / r_xy
        yi = (np.arange(tlo[1], thi[1], dtype=np.float32) - ty) / r_xy
        zi = (np.arange(tlo[2], thi[2], dtype=np.float32) - tzc) / r_z
        d = np.sqrt(xi[:, None, None] ** 2 + yi[None, :, None] ** 2 + zi[None, None, :] ** 2)
        d = d + (0.12 if hgg else 0.25) * irregular
        tsl = tuple(slice(l, h) for l, h in zip(tlo, thi))
        bt = brain[tsl]
        st = np.zeros(tshape, np.uint8)
        st[(d <= 1.0) & bt] = 2
        if hgg:
            st[(d <= 0.62) & bt] = 4
            st[(d <= 0.40) & bt] = 1
        else:
            st[(d <= 0.30) & bt] = 1
        seg_b[tsl] = st
        texture = 1.0 + 0.10 * _blur_noise(rng, tshape, max(2, X // 48))  # +-~10%
        # Oedema fades into the tissue towards its edge: over the outer 40% of its radius to
        # 35% strength in LGG (diffuse), over the outer 15% to 70% in HGG.
        fade, floor = (0.15, 0.70) if hgg else (0.40, 0.35)
        weight = np.clip((1.0 - d) / fade, floor, 1.0).astype(np.float32)

    gain = rng.uniform(900, 2500)
    bias = np.exp(0.15 * _separable_field(rng, sub, terms=2, knots=2))
    flip = bool(rng.integers(2))
    # Mix, bias and noise on the voxels with tissue only (flat), then scatter into the box.
    keep = mask_soft > 0.05
    tk = tb[:, keep]
    ms = mask_soft[keep]
    bk = bias[keep]
    tumour_at = {}
    if tsl is not None:
        keep_t = keep[tsl]
        pos = np.cumsum(keep.ravel()).reshape(sub) - 1  # flat position of each kept voxel
        for label in (2, 1, 4):
            m = (seg_b[tsl] == label) & keep_t
            tumour_at[label] = (pos[tsl][m], texture[m], weight[m] if label == 2 else 1.0)
    box = (ox, oy, oz)
    vols = {}
    for mi, mod in enumerate(MODALITIES):
        c = _TISSUE[mod]
        v = c[0] * tk[0] + c[1] * tk[1] + c[2] * tk[2]
        for label, key in ((2, "oedema"), (1, "necrosis" if hgg else "lgg_core"), (4, "enhancing")):
            if label in tumour_at:
                at, tex, w = tumour_at[label]
                v[at] = w * (_TUMOUR[key][mi] * ms[at] * tex) + (1.0 - w) * v[at]
        g = gain * rng.uniform(0.9, 1.1)
        v *= bk
        v *= g
        sigma = rng.uniform(0.02, 0.04) * g
        v += rng.standard_normal(v.shape, dtype=np.float32) * sigma
        np.square(v, out=v)
        n2 = rng.standard_normal(v.shape, dtype=np.float32) * sigma
        v += n2 * n2
        np.sqrt(v, out=v)  # Rician magnitude
        vbox = np.zeros(sub, np.int16)
        vbox[keep] = np.rint(np.minimum(v, 32767))
        out = np.zeros(shape, np.int16)
        out[box] = vbox
        vols[mod] = out[::-1].copy() if flip else out
    seg = np.zeros(shape, np.uint8)
    seg[box] = seg_b
    if flip:
        seg = seg[::-1].copy()
    if not return_tissue:
        return vols, seg, None
    tissue = np.zeros((3,) + tuple(shape), np.float32)
    tissue[(slice(None),) + box] = tb
    return vols, seg, tissue[:, ::-1].copy() if flip else tissue
