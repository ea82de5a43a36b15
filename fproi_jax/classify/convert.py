"""torchvision ResNet-18 state dict -> Flax variables of :class:`ResNet18`, and .npz I/O.

The ImageNet checkpoint is torchvision's ``resnet18-f37072fd.pth`` (a plain state dict).
Convert it once with torch installed (torch is needed only to read the .pth; torchvision
is not needed), e.g. from a separate virtual environment that borrows the project's
packages (jax, flax) through PYTHONPATH::

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy
    PYTHONPATH=.:.venv/lib/python3.11/site-packages /tmp/torchvenv/bin/python \\
        scripts/convert_resnet18.py resnet18-f37072fd.pth resnet18_imagenet.npz

then use the feature source ``imagenet:resnet18_imagenet.npz``. Loading the .npz needs
numpy only.

Key mapping (:func:`flax_path`): ``.`` -> ``_`` between a layer name and its block index
(``layer2.0.downsample.0`` -> ``layer2_0/downsample_0``); ``conv*.weight`` and
``downsample.0.weight`` -> ``kernel``, transposed from torch's OIHW to Flax's HWIO;
BatchNorm ``weight``/``bias`` -> params ``scale``/``bias``, ``running_mean``/``running_var``
-> batch_stats ``mean``/``var``. ``num_batches_tracked`` (a counter) and ``fc.*`` (the
ImageNet classifier) are dropped. Any other unknown key, a missing key or a wrong shape is
an error naming the key.
"""

from __future__ import annotations

import os
from typing import Mapping

import jax
import numpy as np

from fproi_jax import atomic
from fproi_jax.classify import resnet18

_BN = {"weight": ("params", "scale"), "bias": ("params", "bias"),
       "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def torchvision_shapes() -> dict[str, tuple[int, ...]]:
    """The published torchvision ResNet-18 state-dict keys and shapes (``fc`` included,
    ``num_batches_tracked`` left out: it is a scalar counter of every BatchNorm)."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix, c):
        for name in _BN:
            shapes[f"{prefix}.{name}"] = (c,)

    bn("bn1", 64)
    cin = 64
    for stage, c, stride in resnet18.STAGES:
        for b in range(resnet18.BLOCKS_PER_STAGE):
            p = f"{stage}.{b}"
            shapes[f"{p}.conv1.weight"] = (c, cin if b == 0 else c, 3, 3)
            bn(f"{p}.bn1", c)
            shapes[f"{p}.conv2.weight"] = (c, c, 3, 3)
            bn(f"{p}.bn2", c)
            if b == 0 and (stride != 1 or cin != c):
                shapes[f"{p}.downsample.0.weight"] = (c, cin, 1, 1)
                bn(f"{p}.downsample.1", c)
        cin = c
    shapes["fc.weight"] = (1000, 512)
    shapes["fc.bias"] = (1000,)
    return shapes


def flax_path(key: str) -> tuple[str, ...] | None:
    """torchvision key -> (collection, module..., leaf); None for keys that are dropped."""
    parts = key.split(".")
    if parts[0] == "fc" or parts[-1] == "num_batches_tracked":
        return None
    leaf = parts[-1]
    mods = parts[:-1]
    if mods[0].startswith("layer"):  # layer2.0.downsample.0 -> layer2_0 / downsample_0
        mods = [f"{mods[0]}_{mods[1]}"] + (
            [f"{mods[2]}_{mods[3]}"] if mods[2] == "downsample" else mods[2:]
        )
    is_conv = mods[-1].startswith("conv") or mods[-1] == "downsample_0"
    if is_conv and leaf == "weight":
        return ("params", *mods, "kernel")
    if not is_conv and leaf in _BN:
        collection, name = _BN[leaf]
        return (collection, *mods, name)
    raise KeyError(f"unexpected ResNet-18 state-dict key {key!r}")


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict:
    """torchvision ResNet-18 state dict (numpy arrays) -> ``{'params', 'batch_stats'}``.

    Every leaf of :class:`ResNet18`'s variables is filled exactly once; conv kernels go
    OIHW -> HWIO. Raises KeyError/ValueError naming a missing, unexpected or mis-shaped key.
    """
    expected = torchvision_shapes()
    out: dict = {}
    for key, value in state_dict.items():
        path = flax_path(key)
        if path is None:
            continue
        value = np.asarray(value)
        if key not in expected:
            raise KeyError(f"unexpected ResNet-18 state-dict key {key!r}")
        if value.shape != expected[key]:
            raise ValueError(f"{key}: shape {value.shape}, expected {expected[key]}")
        if path[-1] == "kernel":
            value = value.transpose(2, 3, 1, 0)
        node = out
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = np.ascontiguousarray(value, dtype=np.float32)
    missing = [k for k in expected if flax_path(k) and k not in state_dict]
    if missing:
        raise KeyError(f"ResNet-18 state dict lacks {len(missing)} keys, e.g. {missing[:3]}")
    _check_tree(out)
    return out


def _check_tree(variables: dict) -> None:
    """Same tree structure and shapes as a freshly initialised :class:`ResNet18`."""
    ref = resnet18.init_variables(0, image_size=32)
    ref_shapes = jax.tree_util.tree_map(np.shape, ref)
    got_shapes = jax.tree_util.tree_map(np.shape, variables)
    if ref_shapes != got_shapes:
        raise ValueError("converted variables do not match the ResNet18 module's tree")


def save_npz(path: str | os.PathLike, variables: dict) -> None:
    """Writes variables as a flat .npz (``collection/module/.../leaf`` keys), atomically."""
    flat = {
        "/".join(str(getattr(k, "key", k)) for k in kp): np.asarray(v)
        for kp, v in jax.tree_util.tree_flatten_with_path(variables)[0]
    }
    with atomic.replacing(path) as tmp:
        np.savez(tmp, **flat)


def load_npz(path: str | os.PathLike) -> dict:
    """Reads :func:`save_npz`'s file back into ``{'params', 'batch_stats'}``; checked."""
    out: dict = {}
    with np.load(os.fspath(path)) as z:
        for key in z.files:
            parts = key.split("/")
            node = out
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = np.asarray(z[key], np.float32)
    _check_tree(out)
    return out


def read_pth(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a torch state dict (.pth) into numpy arrays. Needs torch (imported here only)."""
    import torch  # pylint: disable=g-import-not-at-top

    sd = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return {k: v.detach().cpu().numpy() for k, v in sd.items()}
