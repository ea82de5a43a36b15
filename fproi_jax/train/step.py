"""The data-parallel train step: one update of every network of the method.

Written as a per-device program: every device holds the full (replicated) state and its
shard of the global batch, computes local gradients, and averages them over the mesh's
data axis with an explicit `lax.pmean`, so the update equals that of one device on the
whole global batch. `jax.shard_map` maps it over `jax.make_mesh` devices, on one host or
many; the state buffers are donated.

The method (methods/base.py) declares its update groups, taken in order: each group's
objective is differentiated in its networks from the same state, sees the outputs of the
earlier groups (e.g. the generators' fakes, for the discriminators), those it names drawn
through the image pools when the method keeps pools. Each objective gets a key that is the
same on every device (methods/base.py says how dropout and per-example noise use it).
BatchNorm statistics are threaded through the groups in call order and synchronised over
the devices by the BatchNorm layers themselves. Every network then takes its optimizer's update.
"""
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec as P

from fproi_jax.mesh import DATA_AXIS
from fproi_jax.methods.base import Method
from fproi_jax.train import image_pool
from fproi_jax.train.state import TrainState

# The objectives' keys (dropout, noise) come from their own stream of the state's key.
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


def _pooled(pools: dict, outputs: dict, keys: dict) -> tuple[dict, dict]:
    """Queries the replicated pools of `keys` ({output name: key}) with the global batch of
    each output; returns the pools and the outputs with this device's share of the draws.
    Every pool holds as many entries as the others, so each starts from the one count."""
    pools, outputs = dict(pools), dict(outputs)
    for name, key in keys.items():
        local = outputs[name].shape[0]
        pools[name], count, drawn = image_pool.query(
            pools[name], pools["count"], _gather_replicated(outputs[name]), key)
        outputs[name] = jax.lax.dynamic_slice_in_dim(
            drawn, jax.lax.axis_index(DATA_AXIS) * local, local)
    return {**pools, "count": count}, outputs


def _unrolled(per_device_step):
    """The per-device step of one run applied to each run of a stacked state in turn, in
    one program; the results stacked again."""
    def step(state: TrainState, batch):
        runs = [per_device_step(jax.tree.map(lambda x: x[k], state), batch)
                for k in range(state.step.shape[0])]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *runs)
    return step


def _check_groups(method: Method):
    """Every declared network is updated by exactly one group."""
    updated = [name for group in method.update_groups for name in group.networks]
    if sorted(updated) != sorted(method.networks):
        raise ValueError(f"{method.label or type(method).__name__}: the update groups update "
                         f"{updated}, not each of the networks {list(method.networks)} once")


def make_train_step(method: Method, optimizer: optax.GradientTransformation,
                    learning_rate: optax.Schedule, mesh: Mesh, seeds_form: str | None = None):
    """Returns jitted `step(state, batch) -> (state, metrics)`; batch = {'image', 'roi'}.

    seeds_form: None for one run; else the state holds several runs (seeds) stacked along
    a leading axis, all updated on the same batch by one program, their metrics stacked
    the same way: 'vmap' maps the per-device step over that axis (XLA makes each
    convolution of a per-seed network one grouped convolution, which XLA:CPU runs several
    times slower than separate ones), 'unrolled' writes the per-device step once per seed
    into the program (the same operations, which XLA:CPU may run side by side). Measured
    in README, "Seeds trained together"; not yet used by the train loop."""
    _check_groups(method)
    groups = method.update_groups

    def per_device_step(state: TrainState, batch):
        rng, pool_rng = jax.random.split(state.rng)
        pool_keys = dict(zip(method.pooled, jax.random.split(pool_rng, len(method.pooled))))
        # Equal on every device: per-example draws fold in the example's index, so they do
        # not depend on how the batch is split; Networks folds in the device for dropout.
        net_rng = jax.random.fold_in(state.rng, _DROPOUT_STREAM)
        # Differentiate per-device copies (varying over the axis), so each device gets the
        # gradient of its own shard and the pmean below is the one reduction.
        local_params = jax.lax.pcast(state.params, DATA_AXIS, to="varying")
        batch_stats, pools, earlier, grads, metrics = state.batch_stats, state.pools, {}, {}, {}
        for group, group_rng in zip(groups, jax.random.split(net_rng, len(groups))):
            if pools and group.pooled:  # the method keeps pools (static: the state's structure)
                pools, earlier = _pooled(pools, earlier,
                                         {name: pool_keys[name] for name in group.pooled})
            (total, (terms, outputs, batch_stats)), group_grads = jax.value_and_grad(
                group.objective, has_aux=True)(
                    {name: local_params[name] for name in group.networks}, state.params,
                    batch_stats, batch, earlier, group_rng)
            earlier = {**earlier, **jax.lax.stop_gradient(outputs)}
            grads.update(group_grads)
            metrics.update(terms)
            metrics[f"{group.name}_total"] = total
        grads = jax.lax.pmean(grads, DATA_AXIS)
        params, opt_state = {}, {}
        for name in method.networks:
            updates, opt_state[name] = optimizer.update(
                grads[name], state.opt_state[name], state.params[name])
            params[name] = optax.apply_updates(state.params[name], updates)
        metrics = jax.lax.pmean(metrics, DATA_AXIS)
        metrics["learning_rate"] = learning_rate(state.step)
        new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                                  opt_state=opt_state, rng=rng, pools=pools)
        return new_state, metrics

    if seeds_form == "vmap":
        per_device_step = jax.vmap(per_device_step, in_axes=(0, None))
    elif seeds_form == "unrolled":
        per_device_step = _unrolled(per_device_step)
    elif seeds_form is not None:
        raise ValueError(f"seeds_form must be None, 'vmap' or 'unrolled', got {seeds_form!r}")
    sharded = jax.shard_map(per_device_step, mesh=mesh,
                            in_specs=(P(), P(DATA_AXIS)), out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=0)
