"""The one batched loop that applies a trained run (store.runs.load_generators) to a
dataset, and the image size it runs at.

`map_batches` runs one jitted function over batches of a fixed shape: the last, short
batch is padded (repeating its last example) and the padding dropped from the outputs,
so the function compiles once.
"""
from typing import Callable, Iterable, Iterator

import jax
import ml_collections
import numpy as np
import tqdm
from absl import logging



def with_run_image_size(config: ml_collections.ConfigDict,
                        run_config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of `config` with the run's data.image_size: its networks were built for it.

    The dataset (name, builder config, data_dir, split) stays the command line's choice.
    """
    size = run_config.data.image_size
    if config.data.image_size != size:
        logging.warning("Using the run's data.image_size=%d (the command line's config says "
                        "%d): the networks were trained at that size", size,
                        config.data.image_size)
    config = config.copy_and_resolve_references()
    config.data.image_size = size
    return config


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    extra = size - len(array)
    return np.concatenate([array, np.repeat(array[-1:], extra, axis=0)]) if extra else array


def map_batches(fn: Callable[[dict], dict], batches: Iterable[dict], batch_size: int,
                total: int, description: str) -> Iterator[tuple[dict, dict]]:
    """Yields (batch, host outputs of fn(batch padded to batch_size) cut back to the batch).

    batches: dicts of arrays with a leading axis of at most batch_size; fn: a jitted
    function of such a dict (every entry padded) returning a dict of (batch_size, ...)
    arrays. Shows a progress bar over `total` examples.
    """
    with tqdm.tqdm(total=total, desc=description, unit="example", dynamic_ncols=True) as bar:
        for batch in batches:
            n = len(next(iter(batch.values())))
            if not 0 < n <= batch_size:
                raise ValueError(f"batch of {n} examples, expected 1..{batch_size}")
            outputs = jax.device_get(fn({k: _pad(np.asarray(v), batch_size)
                                         for k, v in batch.items()}))
            bar.update(n)
            yield batch, {k: np.asarray(v)[:n] for k, v in outputs.items()}
