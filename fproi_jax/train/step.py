"""The data-parallel Fproi-GAN train step: one update of all four networks.

Written as a per-device program: every device holds the full (replicated) state and its
shard of the global batch, computes local gradients, and averages them over the mesh's
'data' axis with an explicit `lax.pmean`, so the update equals that of one device on the
whole global batch. `jax.shard_map` maps it over `jax.make_mesh` devices, on one host or
many; the state buffers are donated.

Objective (paper eqs. 1-2), with x the image, y the ROI and lambda = train.cycle_weight:
  generators G (with RFB), F:  -log Dy(G(x~)) - log Dx(F(y)) + lambda * (|F(G(x~)) - x|_1 + |G(F(y)~) - y|_1)
  discriminators Dx, Dy:       eq. 1 log loss on real samples and on pooled synthetic ones.
The discriminators are updated from the same state as the generators, on the fakes that
state produced (the canonical CycleGAN ordering, computed in one pass).
"""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh, PartitionSpec as P

from fproi_jax import losses
from fproi_jax.models.fproi_gan import FproiGAN
from fproi_jax.train import image_pool
from fproi_jax.train.state import NETWORKS, TrainState

AXIS = "data"


def _generator_objective(model: FproiGAN, cycle_weight: float, gen_params, params, x, y):
    params = {**params, **gen_params}
    g_x, f_g_x = model.image_synthesis(params, x, y)
    f_y, g_f_y = model.roi_synthesis(params, y)
    fake_x_logits, fake_y_logits = model.discriminate(params, f_y, g_x)
    terms = {
        "g_adversarial": losses.generator_adversarial_loss(fake_y_logits),
        "f_adversarial": losses.generator_adversarial_loss(fake_x_logits),
        "cycle_image": losses.cycle_loss(f_g_x, x),
        "cycle_roi": losses.cycle_loss(g_f_y, y),
    }
    total = (terms["g_adversarial"] + terms["f_adversarial"]
             + cycle_weight * (terms["cycle_image"] + terms["cycle_roi"]))
    return total, (terms, f_y, g_x)


def _discriminator_objective(model: FproiGAN, disc_params, x, y, fake_x, fake_y):
    real_x_logits, real_y_logits = model.discriminate(disc_params, x, y)
    fake_x_logits, fake_y_logits = model.discriminate(disc_params, fake_x, fake_y)
    terms = {"dx": losses.discriminator_loss(real_x_logits, fake_x_logits),
             "dy": losses.discriminator_loss(real_y_logits, fake_y_logits)}
    return terms["dx"] + terms["dy"], terms


def _gather_replicated(local: jax.Array) -> jax.Array:
    """All devices' shards concatenated, as a value known to be equal on every device.

    Written as a psum of zero-padded shards (exact, since it adds zeros) because the
    result must be invariant over the axis for the replicated pools that depend on it.
    """
    n = local.shape[0]
    full = jnp.zeros((jax.lax.axis_size(AXIS) * n, *local.shape[1:]), local.dtype)
    full = jax.lax.dynamic_update_slice_in_dim(full, local, jax.lax.axis_index(AXIS) * n, 0)
    return jax.lax.psum(full, AXIS)


def _pooled_fakes(state: TrainState, fake_x, fake_y, rng):
    """Queries the replicated pools with the global batch of fakes; returns this device's share."""
    local = fake_x.shape[0]
    fake_x, fake_y = _gather_replicated(fake_x), _gather_replicated(fake_y)
    x_key, y_key = jax.random.split(rng)
    pools = state.pools
    images, count, fake_x = image_pool.query(pools["images"], pools["count"], fake_x, x_key)
    rois, _, fake_y = image_pool.query(pools["rois"], pools["count"], fake_y, y_key)
    start = jax.lax.axis_index(AXIS) * local
    share = functools.partial(jax.lax.dynamic_slice_in_dim, start_index=start, slice_size=local)
    return {"images": images, "rois": rois, "count": count}, share(fake_x), share(fake_y)


def make_train_step(model: FproiGAN, optimizer: optax.GradientTransformation,
                    learning_rate: optax.Schedule, train: ml_collections.ConfigDict, mesh: Mesh):
    """Returns jitted `step(state, batch) -> (state, metrics)`; batch = {'image', 'roi'}."""

    def per_device_step(state: TrainState, batch):
        x, y = batch["image"], batch["roi"]
        rng, pool_rng = jax.random.split(state.rng)
        # Differentiate per-device copies (varying over the axis), so each device gets the
        # gradient of its own shard and the pmean below is the one reduction.
        local_params = jax.lax.pcast(state.params, AXIS, to="varying")
        gen_params = {"G": local_params["G"], "F": local_params["F"]}
        (gen_total, (gen_terms, fake_x, fake_y)), gen_grads = jax.value_and_grad(
            _generator_objective, argnums=2, has_aux=True)(
                model, train.cycle_weight, gen_params, state.params, x, y)
        pools, fake_x, fake_y = _pooled_fakes(
            state, jax.lax.stop_gradient(fake_x), jax.lax.stop_gradient(fake_y), pool_rng)
        disc_params = {"Dx": local_params["Dx"], "Dy": local_params["Dy"]}
        (_, disc_terms), disc_grads = jax.value_and_grad(
            _discriminator_objective, argnums=1, has_aux=True)(
                model, disc_params, x, y, fake_x, fake_y)
        grads = jax.lax.pmean({**gen_grads, **disc_grads}, AXIS)
        params, opt_state = {}, {}
        for name in NETWORKS:
            updates, opt_state[name] = optimizer.update(
                grads[name], state.opt_state[name], state.params[name])
            params[name] = optax.apply_updates(state.params[name], updates)
        metrics = jax.lax.pmean({**gen_terms, **disc_terms, "generator_total": gen_total}, AXIS)
        metrics["learning_rate"] = learning_rate(state.step)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                  rng=rng, pools=pools)
        return new_state, metrics

    sharded = jax.shard_map(per_device_step, mesh=mesh,
                            in_specs=(P(), P(AXIS)), out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=0)
