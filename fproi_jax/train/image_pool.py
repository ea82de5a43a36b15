"""History of synthesized samples shown to the discriminators (Shrivastava et al. 2017).

The canonical CycleGAN keeps 50 past fakes per discriminator: while the pool fills, each
new fake is stored and returned; afterwards, with probability 1/2 a random stored fake is
returned and replaced by the new one, otherwise the new fake is returned. Here the pool is
a fixed-size array, so the query is a pure function that runs inside the jitted step.
"""
import jax
import jax.numpy as jnp


def query(pool: jax.Array, count: jax.Array, fakes: jax.Array, rng: jax.Array):
    """Returns (pool, count, fakes to discriminate); a pool of size 0 passes fakes through."""
    size = pool.shape[0]
    if size == 0:
        return pool, count, fakes

    def one(carry, inputs):
        pool, count = carry
        fake, key = inputs
        swap_key, index_key = jax.random.split(key)
        filling = count < size
        swap = jax.random.uniform(swap_key) > 0.5
        slot = jnp.where(filling, count, jax.random.randint(index_key, (), 0, size))
        returned = jnp.where(~filling & swap, pool[slot], fake)
        pool = jnp.where(filling | swap, pool.at[slot].set(fake), pool)
        return (pool, jnp.minimum(count + 1, size)), returned

    keys = jax.random.split(rng, fakes.shape[0])
    (pool, count), returned = jax.lax.scan(one, (pool, count), (fakes, keys))
    return pool, count, returned
