"""Feature sources and batched ResNet-18 feature extraction (paper 3.2: "features ...
extracted ... by using the Resnet [33] network").

A feature source is named by a string:

* ``random`` (or ``random:SEED``): ResNet-18 with torchvision's random initialisation,
  seed 0 by default, frozen. The same weights for every group. A STAND-IN for when no
  ImageNet checkpoint is at hand: it tests the pipeline, it is not the paper's features.
* ``imagenet:PATH``: torchvision's ImageNet weights converted to .npz by
  ``scripts/convert_resnet18.py`` (:mod:`fproi_jax.classify.convert`). The paper does not
  say which ResNet or which weights; ImageNet-pretrained ResNet-18 is our reading.
* ``in_domain`` (or ``in_domain:EPOCHS``): ResNet-18 trained from the random init on the
  classifier's REAL training images only (never the test set, never synthesized images,
  so that every group gets the same features). Recipe (:data:`IN_DOMAIN_RECIPE`): a
  linear head on the 512 pooled features, sigmoid cross-entropy on HGG-vs-LGG, Adam
  lr 1e-3, batch 16, 5 epochs, random horizontal flips, BatchNorm in training mode
  (its running statistics are then used for extraction), seed 0. Small enough for a CPU at
  64-128 px.

:func:`load_source` turns the string into a :class:`FeatureSource` (weights + a
description for the report); :func:`extract_features` runs it over (N, H, W, 1) images in
[0, 1] in fixed-size jitted batches and returns (N, 512) float32.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm
from absl import logging

from fproi_jax.classify import convert, resnet18
from fproi_jax.mesh import DATA_AXIS
from fproi_jax.methods.base import Method, Synthesis, UpdateGroup
from fproi_jax.train.fit import Fitter

IN_DOMAIN_RECIPE = dict(epochs=5, batch_size=16, learning_rate=1e-3, flip=True, seed=0)


@dataclasses.dataclass
class FeatureSource:
    """Frozen ResNet-18 weights plus what the report says about them."""

    spec: str
    variables: dict
    description: str
    stand_in: bool = False


def load_source(
    spec: str,
    *,
    train_images: np.ndarray | None = None,
    train_grades: np.ndarray | None = None,
    progress: bool = True,
) -> FeatureSource:
    """Parses a source string (module docstring). ``in_domain`` needs ``train_images``
    (N, H, W, 1) and ``train_grades`` (builder encoding, 0 = HGG, 1 = LGG) of the REAL
    training set."""
    kind, _, arg = spec.partition(":")
    if kind == "random":
        seed = int(arg or 0)
        return FeatureSource(
            spec,
            resnet18.init_variables(seed),
            f"random: ResNet-18 with torchvision's random init (seed {seed}), frozen -- a "
            "stand-in, not ImageNet features",
            stand_in=True,
        )
    if kind == "imagenet":
        if not arg:
            raise ValueError("feature source 'imagenet:PATH' needs the .npz path")
        if not os.path.exists(arg):
            raise FileNotFoundError(
                f"{arg}: no converted ResNet-18 weights; see scripts/convert_resnet18.py"
            )
        return FeatureSource(
            spec,
            convert.load_npz(arg),
            f"imagenet: torchvision ImageNet ResNet-18 weights from {os.path.basename(arg)}",
        )
    if kind == "in_domain":
        if train_images is None or train_grades is None:
            raise ValueError("feature source 'in_domain' needs train_images and train_grades")
        recipe = dict(IN_DOMAIN_RECIPE, epochs=int(arg or IN_DOMAIN_RECIPE["epochs"]))
        variables = train_in_domain(train_images, train_grades, progress=progress, **recipe)
        return FeatureSource(
            spec,
            variables,
            "in_domain: ResNet-18 trained on the real training images only (HGG/LGG, "
            f"{recipe['epochs']} epochs Adam lr {recipe['learning_rate']}, batch "
            f"{recipe['batch_size']}, seed {recipe['seed']})",
        )
    raise ValueError(
        f"unknown feature source {spec!r}: use random[:SEED], imagenet:PATH or in_domain[:EPOCHS]"
    )


@functools.lru_cache(maxsize=None)
def _apply_fn():
    return jax.jit(lambda variables, x: resnet18.ResNet18().apply(variables, x, train=False))


def extract_features(
    source: str | FeatureSource,
    images: np.ndarray,
    batch_size: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """(N, H, W, 1) images in [0, 1] -> (N, 512) float32 pooled ResNet-18 features.

    Batches of ``batch_size`` (the last one zero-padded, so one compilation per image
    size), jitted, with a tqdm bar. ``source`` may be a string (not ``in_domain``, which
    needs training data: pass a :class:`FeatureSource` from :func:`load_source`).
    """
    if isinstance(source, str):
        source = load_source(source)
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 1:
        raise ValueError(f"expected (N, H, W, 1) images, got {images.shape}")
    n = len(images)
    out = np.zeros((n, resnet18.FEATURES), np.float32)
    if n == 0:
        return out
    batch_size = max(1, min(batch_size, n))
    apply = _apply_fn()
    variables = jax.tree_util.tree_map(jnp.asarray, source.variables)
    starts = range(0, n, batch_size)
    for s in tqdm.tqdm(starts, desc="ResNet-18 features", unit="batch", disable=not progress):
        batch = images[s : s + batch_size]
        m = len(batch)
        if m < batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - m,) + batch.shape[1:],
                                                    np.float32)])
        out[s : s + m] = np.asarray(apply(variables, batch))[:m]
    return out


class _GradeClassifier(nn.Module):
    """ResNet-18 + a linear head: one logit, positive = HGG."""

    axis_name: str | None = None

    @nn.compact
    def __call__(self, x, train: bool):
        backbone = resnet18.ResNet18(axis_name=self.axis_name, name="backbone")
        return nn.Dense(1, name="head")(backbone(x, train))[:, 0]


class GradeClassifierMethod(Method):
    """The in-domain classifier as a one-network method, so that it trains through the
    same sharded step as every network here (train/fit.py), its BatchNorm statistics
    those of the global batch. Batches are {'image', 'hgg'} (HGG = 1.0)."""

    networks = ("C",)
    label = "Grade classifier"

    def __init__(self, flip: bool):
        self.module, self.flip = _GradeClassifier(axis_name=DATA_AXIS), flip

    def init(self, rng, image_shape):
        """The head from `rng`; the backbone from the same key as resnet18.init_variables
        (torchvision's init, as the random source)."""
        x = jnp.zeros((1, *image_shape, 1), jnp.float32)
        head = self.module.init(rng, x, train=False)["params"]["head"]
        backbone = resnet18.ResNet18().init(rng, x)
        return ({"C": {"backbone": backbone["params"], "head": head}},
                {"C": {"backbone": backbone["batch_stats"]}})

    def _objective(self, own, params, batch_stats, batch, earlier, rng):
        x = batch["image"]
        if self.flip:   # each image mirrored left-right with probability 1/2
            flips = jax.vmap(lambda i: jax.random.bernoulli(jax.random.fold_in(rng, i)))(
                batch["index"])
            x = jnp.where(flips[:, None, None, None], x[:, :, ::-1], x)
        logits, updated = self.module.apply(
            {"params": own["C"], "batch_stats": batch_stats["C"]}, x, train=True,
            mutable=["batch_stats"])
        loss = optax.sigmoid_binary_cross_entropy(logits, batch["hgg"]).mean()
        return loss, ({"bce": loss}, {}, {**batch_stats, "C": updated["batch_stats"]})

    def predict(self, variables, x):
        """The HGG probability of each image, (N,)."""
        return (jax.nn.sigmoid(self.module.apply(
            {"params": variables["params"]["C"],
             "batch_stats": variables["batch_stats"]["C"]}, x, train=False)),)

    @property
    def update_groups(self):
        return (UpdateGroup("classifier", ("C",), self._objective),)

    @property
    def syntheses(self):
        return (Synthesis("classify", "x", ("C(x)",), self.predict),)


def train_in_domain(
    images: np.ndarray,
    grades: np.ndarray,
    *,
    epochs: int = 5,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    flip: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Trains ResNet-18 + linear head on HGG-vs-LGG (recipe in the module docstring)
    through the sharded train step on this process's devices (`batch_size` a multiple of
    their number); returns the backbone's ``{'params', 'batch_stats'}`` as numpy.

    ``grades`` in the builder encoding (0 = HGG, 1 = LGG); the target is HGG = 1.
    epochs * (N // batch_size) steps of full batches, a fresh seeded order every epoch.
    Deterministic for a given seed on a given machine and device count.
    """
    from fproi_jax.classify.metrics import hgg_positive  # pylint: disable=g-import-not-at-top

    images = np.asarray(images, np.float32)
    target = hgg_positive(grades).astype(np.float32)
    n = len(images)
    if n < 2 or len(np.unique(target)) < 2:
        raise ValueError("in_domain training needs images of both grades")
    batch_size = max(1, min(batch_size, n))
    steps = epochs * (n // batch_size)
    fitter = Fitter(GradeClassifierMethod(flip), learning_rate, images.shape[1], batch_size)
    if progress:
        logging.info("in-domain ResNet-18: %d steps of batch %d on %d device(s)", steps,
                     batch_size, fitter.mesh.size)
    state, metrics = fitter.fit({"image": images, "hgg": target}, steps, seed)
    if progress:
        logging.info("in-domain ResNet-18: last step's loss %.3f", float(metrics["bce"]))
    backbone = {"params": state.params["C"]["backbone"],
                "batch_stats": state.batch_stats["C"]["backbone"]}
    return jax.tree_util.tree_map(np.asarray, jax.device_get(backbone))
