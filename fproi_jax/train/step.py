"""The data-parallel train step: one update of the method's four networks.

Written as a per-device program: every device holds the full (replicated) state and its
shard of the global batch, computes local gradients, and averages them over the mesh's
data axis with an explicit `lax.pmean`, so the update equals that of one device on the
whole global batch. `jax.shard_map` maps it over `jax.make_mesh` devices, on one host or
many; the state buffers are donated.

The method (methods/) supplies the two objectives, in update order: the generators' (G, F),
which also returns the step's synthesized images and ROIs, then the discriminators' (Dx,
Dy) on those fakes, drawn through the image pools when the method keeps pools. Both are
differentiated from the same state; BatchNorm statistics are threaded through both, in
call order, and synchronised over the devices by the BatchNorm layers themselves.
"""
import functools

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec as P

from fproi_jax.mesh import DATA_AXIS
from fproi_jax.methods.base import DISCRIMINATORS, GENERATORS, NETWORKS, Method
from fproi_jax.train import image_pool
from fproi_jax.train.state import TrainState

# Dropout keys come from their own stream of the state's key, one per device.
_DROPOUT_STREAM = 0x5EED


def _gather_replicated(local: jax.Array) -> jax.Array:
    """All devices' shards concatenated, as a value known to be equal on every device.

    Written as a psum of zero-padded shards (exact, since it adds zeros) because the
    result must be invariant over the axis for the replicated pools that depend on it.
    """
    n = local.shape[0]
    full = jnp.zeros((jax.lax.axis_size(DATA_AXIS) * n, *local.shape[1:]), local.dtype)
    full = jax.lax.dynamic_update_slice_in_dim(full, local, jax.lax.axis_index(DATA_AXIS) * n, 0)
    return jax.lax.psum(full, DATA_AXIS)


def _pooled_fakes(state: TrainState, fakes: dict, rng):
    """Queries the replicated pools with the global batch of fakes; returns this device's share."""
    if "images" not in state.pools:  # a method without pools (pool_size 0)
        return state.pools, fakes
    local = fakes["images"].shape[0]
    fake_x, fake_y = _gather_replicated(fakes["images"]), _gather_replicated(fakes["rois"])
    x_key, y_key = jax.random.split(rng)
    pools = state.pools
    images, count, fake_x = image_pool.query(pools["images"], pools["count"], fake_x, x_key)
    rois, _, fake_y = image_pool.query(pools["rois"], pools["count"], fake_y, y_key)
    start = jax.lax.axis_index(DATA_AXIS) * local
    share = functools.partial(jax.lax.dynamic_slice_in_dim, start_index=start, slice_size=local)
    return ({"images": images, "rois": rois, "count": count},
            {"images": share(fake_x), "rois": share(fake_y)})


def make_train_step(method: Method, optimizer: optax.GradientTransformation,
                    learning_rate: optax.Schedule, mesh: Mesh):
    """Returns jitted `step(state, batch) -> (state, metrics)`; batch = {'image', 'roi'}."""

    def per_device_step(state: TrainState, batch):
        rng, pool_rng = jax.random.split(state.rng)
        net_rng = jax.random.fold_in(jax.random.fold_in(state.rng, _DROPOUT_STREAM),
                                     jax.lax.axis_index(DATA_AXIS))
        gen_rng, disc_rng = jax.random.split(net_rng)
        # Differentiate per-device copies (varying over the axis), so each device gets the
        # gradient of its own shard and the pmean below is the one reduction.
        local_params = jax.lax.pcast(state.params, DATA_AXIS, to="varying")
        (gen_total, (gen_terms, fakes, batch_stats)), gen_grads = jax.value_and_grad(
            method.generator_objective, has_aux=True)(
                {name: local_params[name] for name in GENERATORS}, state.params,
                state.batch_stats, batch, gen_rng)
        pools, fakes = _pooled_fakes(state, jax.lax.stop_gradient(fakes), pool_rng)
        (_, (disc_terms, batch_stats)), disc_grads = jax.value_and_grad(
            method.discriminator_objective, has_aux=True)(
                {name: local_params[name] for name in DISCRIMINATORS}, state.params,
                batch_stats, batch, fakes, disc_rng)
        grads = jax.lax.pmean({**gen_grads, **disc_grads}, DATA_AXIS)
        params, opt_state = {}, {}
        for name in NETWORKS:
            updates, opt_state[name] = optimizer.update(
                grads[name], state.opt_state[name], state.params[name])
            params[name] = optax.apply_updates(state.params[name], updates)
        metrics = jax.lax.pmean({**gen_terms, **disc_terms, "generator_total": gen_total},
                                DATA_AXIS)
        metrics["learning_rate"] = learning_rate(state.step)
        new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                                  opt_state=opt_state, rng=rng, pools=pools)
        return new_state, metrics

    sharded = jax.shard_map(per_device_step, mesh=mesh,
                            in_specs=(P(), P(DATA_AXIS)), out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=0)
