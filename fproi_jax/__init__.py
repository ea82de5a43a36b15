"""fproi-jax: a JAX/Flax implementation of Fproi-GAN (Dong et al., 2021).

Data flows top to bottom: data (TFDS source -> grain -> sharded batches) -> models ->
train (state, step, loop, checkpoints) -> metrics -> evaluation (reports, figures, synthesis).
"""
