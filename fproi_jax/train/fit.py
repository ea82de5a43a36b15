"""Training on arrays in memory, for the networks a downstream task trains (the segmenter):
the same TrainState and sharded step (`make_train_step`) as `loop.train`, without its
dataset reader, checkpoints and logs, since a task's budget is a few hundred steps.

Batches: a seeded shuffle of the examples, reshuffled every epoch, cut into global batches
of `batch_size` (a multiple of the mesh's devices), sharded over the data axis of a mesh
of this process's devices. Each batch also holds its examples' `index` in the arrays, the
seed of per-example draws (methods/base.py).
"""
import jax
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from fproi_jax.mesh import DATA_AXIS, data_mesh
from fproi_jax.methods.base import Method
from fproi_jax.train import state as state_lib
from fproi_jax.train.step import make_train_step


def batch_order(n: int, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """(steps, batch_size) example indices: epochs of seeded permutations, concatenated."""
    rng = np.random.default_rng(seed)
    epochs = -(-steps * batch_size // n)
    return np.concatenate([rng.permutation(n) for _ in range(epochs)])[
        :steps * batch_size].reshape(steps, batch_size)


class Fitter:
    """Trains fresh copies of `method` on arrays; the step compiles once for all of them."""

    def __init__(self, method: Method, learning_rate: float, image_size: int,
                 batch_size: int):
        self.mesh = data_mesh(jax.local_devices())
        if batch_size % self.mesh.size:
            raise ValueError(f"batch size {batch_size} is not a multiple of the "
                             f"{self.mesh.size} devices")
        self.method, self.batch_size = method, batch_size
        optimizer = optax.adam(learning_rate)
        self.step = make_train_step(method, optimizer, optax.constant_schedule(learning_rate),
                                    self.mesh)
        self.create = jax.jit(
            lambda rng: state_lib.create_train_state(method, optimizer, rng, image_size),
            out_shardings=NamedSharding(self.mesh, P()))
        self.sharding = NamedSharding(self.mesh, P(DATA_AXIS))

    def fit(self, arrays: dict, steps: int, seed: int):
        """(the trained TrainState, the last step's metrics) after `steps` steps on `arrays`
        ({'image', 'roi'}: (N, S, S, 1)); `seed` draws the initial parameters and the order."""
        n = len(arrays["image"])
        state, metrics = self.create(jax.random.PRNGKey(seed)), {}
        for indices in batch_order(n, steps, self.batch_size, seed):
            batch = jax.device_put({**{k: v[indices] for k, v in arrays.items()},
                                    "index": indices.astype(np.int32)}, self.sharding)
            # At most two steps in flight, as loop.train: with 150 steps queued at once on 4
            # fake CPU devices, XLA:CPU's all-reduce rendezvous timed out (seen here).
            jax.block_until_ready(metrics)
            state, metrics = self.step(state, batch)
        return state, jax.device_get(metrics)
