"""Train state and the optimizers: one state per network the method declares.

Paper section 3: Adam with default parameters and learning rate 2e-4 for every network.
`lr_schedule='linear_decay'` keeps the rate for the first half of training and decays it
linearly to zero over the second half, as the canonical CycleGAN does.
"""
import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from fproi_jax.methods.base import Method


@flax.struct.dataclass
class TrainState:
    step: jax.Array   # int32 scalar: number of updates applied
    params: dict       # {network: parameter tree} for each of method.networks
    batch_stats: dict  # BatchNorm running averages by module path; {} without BatchNorm
    opt_state: dict    # one optax state per entry of params
    rng: jax.Array     # uint32[2] key; split every step for the image pools and dropout
    pools: dict        # {each of method.pooled, 'count'}: past outputs; {} without pools


def learning_rate_schedule(train: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
    if train.lr_schedule == "constant":
        return optax.constant_schedule(train.learning_rate)
    if train.lr_schedule == "linear_decay":
        half = total_steps // 2
        return optax.join_schedules(
            [optax.constant_schedule(train.learning_rate),
             optax.linear_schedule(train.learning_rate, 0.0, max(total_steps - half, 1))],
            [half])
    raise ValueError(f"train.lr_schedule must be 'constant' or 'linear_decay', "
                     f"got {train.lr_schedule!r}")


def make_optimizer(train: ml_collections.ConfigDict,
                   total_steps: int) -> optax.GradientTransformation:
    """The Adam optimizer used, with its own state, by each network."""
    return optax.adam(learning_rate_schedule(train, total_steps), eps=train.adam_eps,
                      b1=train.adam_b1, b2=train.adam_b2)


def create_train_state(method: Method, optimizer: optax.GradientTransformation,
                       rng: jax.Array, image_size: int) -> TrainState:
    """Fresh parameters, optimizer states and empty pools; pure, so it can run under jit.

    A pool holds `pool_size` entries of `method.pooled_shape` (one-channel images of the
    run's size unless the method says otherwise), one pool per output in `method.pooled`;
    every pool gets the step's batch, so one count serves them all."""
    init_rng, state_rng = jax.random.split(rng)
    params, batch_stats = method.init(init_rng, (image_size, image_size))
    pools = {**{name: jnp.zeros((method.pool_size, *method.pooled_shape(name, image_size)),
                                jnp.float32) for name in method.pooled},
             "count": jnp.zeros((), jnp.int32)}
    return TrainState(
        step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
        opt_state={name: optimizer.init(params[name]) for name in method.networks},
        rng=state_rng,
        pools=pools if method.pool_size and method.pooled else {})
