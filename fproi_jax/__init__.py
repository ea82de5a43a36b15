"""fproi-jax: a JAX/Flax implementation of Fproi-GAN (Dong et al., 2021).

Data flows top to bottom: data (TFDS source -> grain -> sharded batches) -> models ->
train (state, step, loop, checkpoints) -> metrics -> evaluation (reports, figures, synthesis).
"""
import sys

MIN_PYTHON = (3, 11)  # pyproject.toml's requires-python; the code uses 3.11 syntax and typing
if sys.version_info < MIN_PYTHON:
    raise ImportError(f"fproi_jax needs Python >= {'.'.join(map(str, MIN_PYTHON))}, but "
                      f"{sys.executable} is Python {sys.version.split()[0]}")
