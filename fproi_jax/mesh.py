"""The device mesh: one axis, 'data', over which batches are split and gradients averaged.

The one home of the axis name: the pipeline shards batches over it, the train step reduces
over it, and BatchNorm layers average their batch statistics over it while training.
"""
import jax
from jax.sharding import Mesh

DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh:
    """A one-axis mesh named DATA_AXIS over all global devices (or the ones given)."""
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices,
                         axis_types=(jax.sharding.AxisType.Explicit,))
