"""Input checks shared by every metric: a batch of one-channel images, (N, H, W, 1)."""
import jax.numpy as jnp


def as_image_pair(pred, target):
    """Checks `pred` and `target` are matching (N, H, W, 1) batches; returns them as (N, H, W).

    Integer and boolean inputs become float32; float64 stays float64 (when x64 is enabled).
    Runs at trace time, so under jit the check costs nothing.
    """
    pred, target = jnp.asarray(pred), jnp.asarray(target)
    for name, array in (("pred", pred), ("target", target)):
        if array.ndim != 4 or array.shape[-1] != 1:
            raise ValueError(f"{name} must have shape (N, H, W, 1), got {array.shape}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    dtype = jnp.promote_types(pred.dtype, jnp.float32)
    return pred[..., 0].astype(dtype), target[..., 0].astype(dtype)

