"""Cheap ways to enlarge a set of (image, ROI) pairs, the baselines synthesized pairs must
beat (the segmentation task's groups). Each returns one new pair per input pair, seeded.

- `classical`: what a segmentation user tries first (nnU-Net's and MONAI's usual set): a
  random left-right flip, a quarter turn, an elastic deformation (Simard et al. 2003,
  dm_pix, the same field for the image and its ROI) and an intensity jitter (gain, offset
  and gamma on the tissue), with the ROI re-binarised (> 0.5);
- `copy_paste`: TumorCP (Yang et al. 2021) / CarveMix style: a real tumour, its image
  inside its mask, is pasted with its mask into another training slice, at a random shift
  that keeps it inside that slice's tissue (image > TISSUE) and off its own tumour; the
  new ROI is the union. A slice where no donor fits in `tries` draws is an error naming
  it, never a silent drop.
"""
import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

from fproi_jax.roi import binarise

TISSUE = 0.05  # grey level above which a pixel is tissue (the phantoms' and BRATS's
               # background is 0 after the builders' scaling)


def _classical_one(image, roi, key, alpha, sigma, jitter):
    flip_key, turn_key, field_key, gain_key, offset_key, gamma_key = jax.random.split(key, 6)
    pair = jnp.concatenate([image, roi], axis=-1)
    pair = jnp.where(jax.random.bernoulli(flip_key), pair[:, ::-1], pair)
    pair = jax.lax.switch(jax.random.randint(turn_key, (), 0, 4),
                          [lambda p, k=k: jnp.rot90(p, k) for k in range(4)], pair)
    pair = dm_pix.elastic_deformation(field_key, pair, alpha, sigma, mode="constant", cval=0.0)
    image, roi = pair[..., :1], binarise(pair[..., 1:]).astype(jnp.float32)
    gain = 1.0 + jitter * jax.random.uniform(gain_key, (), minval=-1, maxval=1)
    offset = 0.5 * jitter * jax.random.uniform(offset_key, (), minval=-1, maxval=1)
    gamma = jnp.exp(jitter * jax.random.uniform(gamma_key, (), minval=-1, maxval=1))
    tissue = image > TISSUE
    jittered = jnp.clip(gain * jnp.clip(image, 0, 1) ** gamma + offset, 0.0, 1.0)
    return jnp.where(tissue, jittered, image), roi


def classical(images, rois, seed: int, alpha: float = 34.0, sigma: float = 4.0,
              jitter: float = 0.1):
    """One augmented copy of each (N, S, S, 1) pair (module docstring), key (seed, index).
    alpha, sigma: the elastic field's strength and smoothness in pixels; jitter: the
    largest relative gain change, log-gamma and (halved) offset."""
    images, rois = np.asarray(images, np.float32), np.asarray(rois, np.float32)
    keys = jax.random.split(jax.random.key(seed), len(images))
    one = jax.jit(jax.vmap(lambda x, y, k: _classical_one(x, y, k, alpha, sigma, jitter)))
    new_images, new_rois = one(images, rois, keys)
    return np.asarray(new_images), np.asarray(new_rois)


def _shifted(mask, dy, dx):
    """`mask` moved by (dy, dx) pixels; what leaves the image is dropped."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, xs = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    yd, xd = slice(max(-dy, 0), h + min(-dy, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[ys, xs] = mask[yd, xd]
    return out


def copy_paste(images, rois, seed: int, tries: int = 200, ids=None):
    """One pasted copy of each (N, S, S, 1) pair: slice i receives a tumour of another
    slice (module docstring); returns (images, rois, donor index per slice). `ids` name the
    slices in the error for one that no donor fits."""
    images, rois = np.asarray(images, np.float32), binarise(np.asarray(rois)).astype(np.float32)
    rng = np.random.default_rng(seed)
    n, size = len(images), images.shape[1]
    donors = [i for i in range(n) if rois[i].any()]
    if not donors:
        raise ValueError("copy_paste: no slice has a tumour to paste")
    out_images, out_rois, used = images.copy(), rois.copy(), np.full(n, -1)
    for i in range(n):
        free = (images[i, ..., 0] > TISSUE) & (rois[i, ..., 0] == 0)
        for _ in range(tries):
            donor = donors[rng.integers(len(donors))]
            if donor == i and len(donors) > 1:
                continue
            dy, dx = rng.integers(-size // 2, size // 2, 2)
            mask = _shifted(rois[donor, ..., 0], dy, dx)
            if mask.sum() == rois[donor].sum() and not (mask.astype(bool) & ~free).any():
                tumour = _shifted(images[donor, ..., 0], dy, dx)
                out_images[i, ..., 0] = np.where(mask > 0, tumour, images[i, ..., 0])
                out_rois[i, ..., 0] = np.maximum(rois[i, ..., 0], mask)
                used[i] = donor
                break
        else:
            name = ids[i] if ids is not None else i
            raise ValueError(f"copy_paste: no tumour of the {len(donors)} donors fits inside "
                             f"the tissue of slice {name} in {tries} draws")
    return out_images, out_rois, used
