"""Self-contained inference programs: a method's synthesis directions as `jax.export` files.

`--mode=export` writes one per direction the method declares (`Method.syntheses`) beside
the Orbax parameters, taking the direction's inputs in order; the paired methods' two:

    image_synthesis.jaxexport   (x, y) -> (synthesized ROI, reconstructed image)
    roi_synthesis.jaxexport     y -> (synthesized image, reconstructed ROI)

Each is a serialized StableHLO program with the trained parameters (and BatchNorm
statistics) embedded as constants, lowered for CPU and CUDA, with a symbolic batch size and
the run's fixed image size. They load with jax alone, without this repository:

    import numpy as np
    from jax import export
    program = export.deserialize(open("export/roi_synthesis.jaxexport", "rb").read())
    masks = np.zeros((2, 256, 256, 1), np.float32); masks[:, 100:140, 90:150] = 1
    images, rois = program.call(masks)
"""
import functools
import pathlib

import jax
import jax.numpy as jnp
from jax import export

from fproi_jax import atomic
from fproi_jax.methods import Method

PLATFORMS = ("cpu", "cuda")
SUFFIX = ".jaxexport"


def write_programs(directory: pathlib.Path, method: Method, variables: dict, image_size: int):
    """Writes <name>.jaxexport of each of the method's syntheses into `directory`."""
    variables = jax.device_get(variables)  # host constants, whatever devices they came from
    batch, = export.symbolic_shape("batch")
    spec = jax.ShapeDtypeStruct((batch, image_size, image_size, 1), jnp.float32)
    for synthesis in method.syntheses:
        fn = jax.jit(functools.partial(synthesis.fn, variables))
        specs = [spec] * (1 + len(synthesis.given))
        exported = export.export(fn, platforms=PLATFORMS)(*specs)
        atomic.write_bytes(pathlib.Path(directory) / f"{synthesis.name}{SUFFIX}",
                           exported.serialize())
