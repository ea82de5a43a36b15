"""Building blocks shared by the RFB, the generators and the discriminators.

The paper's "conv block" is convolution + instance normalisation + activation
(Figures 3-4). Where the paper says "mirror fill" we reflect-pad before a VALID
convolution, as the canonical CycleGAN does.
"""
import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fproi_jax.mesh import DATA_AXIS


# Generators' last activation; data lie in [0, 1], so every method defaults to sigmoid.
OUTPUT_ACTIVATIONS = {"sigmoid": nn.sigmoid, "tanh": jnp.tanh, "linear": lambda x: x}


def check_divisible(x: jax.Array, factor: int, network: str):
    """ValueError naming the network unless x's height and width are multiples of `factor`."""
    if x.shape[1] % factor or x.shape[2] % factor:
        raise ValueError(f"{network} input height and width must be divisible by {factor}, "
                         f"got {x.shape}")


def _conv(x, kernel, strides, padding, dimension_numbers, precision=None):
    return jax.lax.conv_general_dilated(x, kernel, strides, padding,
                                        dimension_numbers=dimension_numbers, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _cpu_conv(x, kernel, strides, padding, dimension_numbers, precision):
    """`lax.conv_general_dilated` in the forms XLA:CPU runs fastest; the same arithmetic.

    Forward: an unpadded ('VALID') convolution is evaluated with a zero row and column
    appended and the extra outputs cropped (they come after the last valid one, so the kept
    outputs read exactly the same windows): XLA:CPU's unpadded forward path is up to 20x
    slower (7x7, 33 -> 32 channels at 256x256: 270 ms vs 66 ms at batch 4, 158 ms vs 39 ms
    for one example). Backward: the plain convolution's gradients, the kernel's summed over
    parts of the output (`_kernel_gradient_parts`) where XLA:CPU's one kernel gradient is
    the slower (the same 7x7 layer, batch 4: 1.5 s vs 0.33 s per example; one example:
    216 ms vs 82 ms in row tiles). Timings in docs/measured_facts.md.
    """
    spec = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, dimension_numbers)
    if padding != "VALID":
        return _conv(x, kernel, strides, padding, dimension_numbers, precision)
    valid_shape = jax.eval_shape(
        lambda x, k: _conv(x, k, strides, "VALID", dimension_numbers), x, kernel).shape
    y = _conv(x, kernel, strides, [(0, 1)] * len(strides), dimension_numbers, precision)
    for axis in spec.out_spec[2:]:
        y = jax.lax.slice_in_dim(y, 0, valid_shape[axis], axis=axis)
    return y


def _cpu_conv_forward(x, kernel, strides, padding, dimension_numbers, precision):
    return _cpu_conv(x, kernel, strides, padding, dimension_numbers, precision), (x, kernel)


# Where a sum of kernel gradients over parts of the output beats XLA:CPU's one over all of it
# (2-core machine; docs/measured_facts.md): large layers, at least PART_MIN_FLOPS per example.
# Each example alone (batch 4, alone: 0.42-0.84 of the batched time for 128x128, 32 -> 32 and
# up to 0.53 for 256x256, 33 -> 32, 7x7), and its output rows in tiles of about
# TILE_POSITIONS positions (one example, alone: 0.32-0.38 of the untiled time for 256x256,
# 33 -> 32, 7x7 and 3x3 stride-2 layers at 128x128 and 64x64, 32 -> 64 to 128 -> 256). Below
# it the batched, untiled form is faster in the whole step: every layer of the paper demo's
# half-width networks at 64 px is under 110 MFLOP, and its steps are 6-16% faster so.
PART_MIN_FLOPS = 2e8
TILE_POSITIONS = 2048


def _kernel_gradient_parts(x, kernel, g, strides, padding, spec):
    """(x part, g part) pairs whose kernel gradients sum to this convolution's, or None where
    the layer is below PART_MIN_FLOPS per example: each example alone and, in an unpadded
    convolution, its output rows in tiles of about TILE_POSITIONS positions, each with the
    rows of x that the tile's windows read."""
    positions = np.prod([g.shape[axis] for axis in spec.out_spec[2:]])
    if 2 * positions * np.prod(kernel.shape) < PART_MIN_FLOPS:  # taps x in x out channels
        return None
    x_rows, g_rows, taps = spec.lhs_spec[2], spec.out_spec[2], kernel.shape[spec.rhs_spec[2]]
    rows = g.shape[g_rows]
    # Padded layers stay whole: their tiles need x padded explicitly first, and Pix2Pix's
    # step (its transposed convolutions' phases) was 8% slower so.
    tile = max(1, TILE_POSITIONS * rows // positions) if padding == "VALID" else rows
    cut = jax.lax.slice_in_dim

    def part(i, start):
        stop = min(start + tile, rows)
        x_part = cut(x, i, i + 1, axis=spec.lhs_spec[0])
        if tile < rows:
            x_part = cut(x_part, start * strides[0], (stop - 1) * strides[0] + taps,
                         axis=x_rows)
        return x_part, cut(cut(g, i, i + 1, axis=spec.out_spec[0]), start, stop, axis=g_rows)

    return [part(i, start) for i in range(x.shape[spec.lhs_spec[0]])
            for start in range(0, rows, tile)]


def _cpu_conv_backward(strides, padding, dimension_numbers, precision, residuals, g):
    x, kernel = residuals
    conv = functools.partial(_conv, strides=strides, padding=padding,
                             dimension_numbers=dimension_numbers, precision=precision)
    spec = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, dimension_numbers)
    parts = _kernel_gradient_parts(x, kernel, g, strides, padding, spec)
    if parts is None or len(parts) == 1:
        return jax.vjp(conv, x, kernel)[1](g)
    (dx,) = jax.vjp(lambda x: conv(x, kernel), x)[1](g)
    dkernel = sum(jax.vjp(lambda k: conv(x_part, k), kernel)[1](g_part)[0]
                  for x_part, g_part in parts)
    return dx, dkernel


_cpu_conv.defvjp(_cpu_conv_forward, _cpu_conv_backward)


# Where XLA:CPU's convolution is slower than shifted matrix products (2-core machine,
# docs/measured_facts.md): stride-1 layers whose kernel maps at least this many (input,
# output) channel pairs per tap. CycleGAN's residual convolutions at 256 px (3x3, 256 -> 256
# at 64x64), three blocks forward and gradients: 545-556 ms against 1264-1368 ms (an
# earlier form), and its step 12.4-12.6 s against 23.5-24.4 s; Pix2Pix's inner phases
# (1024 -> 512) 0.49-0.66 of the time. Layers of 128 -> 128 channels at 32x32 are no faster
# so, 64 -> 64 at 64x64 slower (1.15-1.3); no network here has them between.
SHIFTED_MATMUL_MIN_CHANNEL_PAIRS = 256 * 256


def _is_nhwc_hwio(lhs, rhs, dimension_numbers) -> bool:
    """Whether the convolution's layout is NHWC x HWIO -> NHWC, as the matmul forms assume."""
    nhwc = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
    return jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) == nhwc


def _takes_shifted_matmuls(lhs, rhs, window_strides, dimension_numbers) -> bool:
    """Whether this convolution runs as `_conv_by_shifted_matmuls` on CPU."""
    return (_is_nhwc_hwio(lhs, rhs, dimension_numbers) and all(s == 1 for s in window_strides)
            and rhs.shape[2] * rhs.shape[3] >= SHIFTED_MATMUL_MIN_CHANNEL_PAIRS)


def _width_windows(x, taps_w: int):
    """The windows an unpadded stride-1 NHWC convolution reads along the width, laid side by
    side: (N, H, W - taps_w + 1, taps_w x C), x[:, :, j:j + w] in channel block j."""
    w = x.shape[2] - taps_w + 1
    return _side_by_side([x[:, :, j:j + w] for j in range(taps_w)])


def _side_by_side(blocks):
    """The blocks concatenated along their last axis, written as a sum of the blocks each
    zero-padded to its place: XLA:CPU runs that as one elementwise loop, 5x faster than its
    concatenation (three 64x64x256 windows: 0.9 ms against 5.0)."""
    c, k = blocks[0].shape[-1], len(blocks)
    return sum(jnp.pad(block, ((0, 0),) * (block.ndim - 1) + ((i * c, (k - 1 - i) * c),))
               for i, block in enumerate(blocks))


def _row_blocks(kernel):
    """An HWIO kernel as one (taps_w x C_in, taps_h x C_out) matrix: the taps of kernel row i
    in column block i, their rows in `_width_windows`' channel order."""
    taps_h, taps_w, c_in, c_out = kernel.shape
    return kernel.transpose(1, 2, 0, 3).reshape(taps_w * c_in, taps_h * c_out)


def _rows(a):
    """(..., C) -> (positions, C)."""
    return a.reshape(-1, a.shape[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _shifted_matmul_conv(x, kernel, precision):
    """Unpadded stride-1 NHWC x HWIO convolution as one matrix product and a sum of row
    shifts: x's width windows (positions, taps_w x C_in) times `_row_blocks(kernel)` give
    every input row's products with each kernel row i, z[:, r, :, block i], and output row h
    sums z[:, h + i, :, block i] over i. The windows along the width only (taps_w copies of
    x, not taps_h x taps_w): CycleGAN's residual layers at 256 px spent 13.6 ms a layer
    copying the 3x3 windows, more than a quarter of their product."""
    taps_h, taps_w, _, c_out = kernel.shape
    windows = _width_windows(x, taps_w)
    z = jnp.dot(_rows(windows), _row_blocks(kernel), precision=precision)
    z = z.reshape(*windows.shape[:3], taps_h * c_out)
    h = x.shape[1] - taps_h + 1
    return sum(z[:, i:i + h, :, i * c_out:(i + 1) * c_out] for i in range(taps_h))


def _shifted_matmul_conv_forward(x, kernel, precision):
    return _shifted_matmul_conv(x, kernel, precision), (x, kernel)


def _shifted_matmul_conv_backward(precision, residuals, g):
    """Keeps only x and the kernel for the backward pass (autodiff would keep the windows,
    taps_w x the activations) and recomputes the windows. z's gradient is g shifted down by
    i rows into block i; then each gradient is one matrix product: the kernel's, the
    windows' and z's gradient as (positions, channels) matrices contracted over their rows
    (XLA:CPU folds that into the product, where an einsum over (n, h, w) copied g
    transposed: 57 ms a layer at 256 px); the windows', z's gradient times the kernel matrix
    transposed, its channel blocks added back at their column shifts."""
    x, kernel = residuals
    taps_h, taps_w, c_in, c_out = kernel.shape
    # x made to depend on g (XLA:CPU drops optimization barriers), so that its windows are
    # cut here and not shared with the forward pass's, which XLA then held until now.
    x = x + 0.0 * g[:1, :1, :1, :1].astype(x.dtype)
    windows = _width_windows(x, taps_w)
    dz = _side_by_side([jnp.pad(g, ((0, 0), (i, taps_h - 1 - i), (0, 0), (0, 0)))
                        for i in range(taps_h)])
    d_matrix = jax.lax.dot_general(_rows(windows), _rows(dz), (((0,), (0,)), ((), ())),
                                   precision=precision)
    d_windows = jax.lax.dot_general(_rows(dz), _row_blocks(kernel), (((1,), (1,)), ((), ())),
                                    precision=precision).reshape(windows.shape)
    dx = sum(jnp.pad(d_windows[..., j * c_in:(j + 1) * c_in],
                     ((0, 0), (0, 0), (j, taps_w - 1 - j), (0, 0))) for j in range(taps_w))
    dkernel = d_matrix.reshape(taps_w, c_in, taps_h, c_out).transpose(2, 0, 1, 3)
    return dx, dkernel


_shifted_matmul_conv.defvjp(_shifted_matmul_conv_forward, _shifted_matmul_conv_backward)


def _conv_by_shifted_matmuls(x, kernel, padding, precision=None):
    """A stride-1 NHWC x HWIO convolution with explicit padding as `_shifted_matmul_conv`:
    forward and backward, matrix products of shifted windows of the input."""
    if padding != "VALID":  # lax.pad: negative padding crops, as in lax.conv_general_dilated
        x = jax.lax.pad(x, jnp.zeros((), x.dtype),
                        ((0, 0, 0), *((lo, hi, 0) for lo, hi in padding), (0, 0, 0)))
    return _shifted_matmul_conv(x, kernel, precision)


# Where a strided convolution's gradients are faster as `_shifted_matmul_conv`'s on
# space-to-depth cells (2-core machine, docs/measured_facts.md): layers whose cell kernel maps
# at least this many (cell input, output) channel pairs per tap, stride^2 x C_in x C_out, and
# of at least CELL_MIN_FLOPS per example. Alone, a 4x4 stride-2 layer at 128x128, 64 -> 128,
# both gradients: 14.9 ms against 20.9; 32x32, batch 4, 32 -> 64 (8,192 pairs): 2.9 against
# 1.5. In whole steps the paper demo's layers (17 MFLOP per example) made DCGAN's 5-9% slower.
CELL_MIN_CHANNEL_PAIRS = 4 * 64 * 128
CELL_MIN_FLOPS = 1e8


def _takes_cell_gradients(lhs, rhs, window_strides, padding, dimension_numbers) -> bool:
    """Whether this convolution's backward pass runs on space-to-depth cells on CPU: explicit,
    non-negative padding (its forward pass is lax's, which XLA:CPU gets wrong for some
    negative paddings and runs slowly unpadded), equal strides dividing the kernel sides,
    and a large enough layer."""
    s = window_strides[0]
    return (padding != "VALID" and min(min(p) for p in padding) >= 0
            and _is_nhwc_hwio(lhs, rhs, dimension_numbers)
            and s > 1 and all(stride == s for stride in window_strides)
            and rhs.shape[0] % s == 0 and rhs.shape[1] % s == 0
            and s * s * rhs.shape[2] * rhs.shape[3] >= CELL_MIN_CHANNEL_PAIRS
            and 2 * np.prod(rhs.shape) * (lhs.shape[1] // s) * (lhs.shape[2] // s)
            >= CELL_MIN_FLOPS)


def _space_to_depth(x: jax.Array, block: int) -> jax.Array:
    """(N, H, W, C) -> (N, H/b, W/b, b b C): each b x b cell's pixels as channels (row,
    column, channel)."""
    n, h, w, c = x.shape
    cells = x.reshape(n, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5)
    return cells.reshape(n, h // block, w // block, block * block * c)


def _depth_to_space(x: jax.Array, block: int) -> jax.Array:
    """The inverse of `_space_to_depth`."""
    n, h, w, c = x.shape
    c //= block * block
    pixels = x.reshape(n, h, w, block, block, c).transpose(0, 1, 3, 2, 4, 5)
    return pixels.reshape(n, h * block, w * block, c)


def _cell_layout(x_shape, kernel_shape, stride, padding):
    """(padding of x that makes its padded size a multiple of the stride, output rows and
    columns of the cell convolution) for a stride-s convolution."""
    (lo_h, hi_h), (lo_w, hi_w) = padding
    sizes = (x_shape[1] + lo_h + hi_h, x_shape[2] + lo_w + hi_w)
    cells = [-(-size // stride) for size in sizes]
    config = ((0, 0, 0), (lo_h, hi_h + cells[0] * stride - sizes[0], 0),
              (lo_w, hi_w + cells[1] * stride - sizes[1], 0), (0, 0, 0))
    outputs = [c - k // stride + 1 for c, k in zip(cells, kernel_shape[:2])]
    return config, outputs


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_with_cell_gradients(x, kernel, stride: int, padding, precision):
    """A stride-s NHWC x HWIO convolution (kernel sides divisible by s): forward
    `lax.conv_general_dilated`; backward the same convolution written on s x s
    space-to-depth cells of the padded input, a stride-1 convolution of (k/s, k/s) taps
    holding kernel tap (s a + e, s b + f) at cell tap (a, b), cell channel (e, f, c), whose
    gradients are `_shifted_matmul_conv`'s matrix products."""
    return _conv(x, kernel, (stride, stride), padding, ("NHWC", "HWIO", "NHWC"), precision)


def _conv_with_cell_gradients_forward(x, kernel, stride, padding, precision):
    return _conv_with_cell_gradients(x, kernel, stride, padding, precision), (x, kernel)


def _conv_with_cell_gradients_backward(stride, padding, precision, residuals, g):
    x, kernel = residuals
    s, c, (kh, kw, _, f) = stride, x.shape[-1], kernel.shape
    config, (ho, wo) = _cell_layout(x.shape, kernel.shape, s, padding)
    cells = _space_to_depth(jax.lax.pad(x, jnp.zeros((), x.dtype), config), s)
    cell_kernel = kernel.reshape(kh // s, s, kw // s, s, c, f).transpose(0, 2, 1, 3, 4, 5)
    g = jnp.pad(g, ((0, 0), (0, ho - g.shape[1]), (0, wo - g.shape[2]), (0, 0)))
    d_cells, d_cell_kernel = _shifted_matmul_conv_backward(
        precision, (cells, cell_kernel.reshape(kh // s, kw // s, s * s * c, f)), g)
    dx = jax.lax.pad(_depth_to_space(d_cells, s), jnp.zeros((), x.dtype),
                     [(-lo, -hi, 0) for lo, hi, _ in config])
    dkernel = d_cell_kernel.reshape(kh // s, kw // s, s, s, c, f).transpose(0, 2, 1, 3, 4, 5)
    return dx, dkernel.reshape(kernel.shape)


_conv_with_cell_gradients.defvjp(_conv_with_cell_gradients_forward,
                                 _conv_with_cell_gradients_backward)


def _varying_as(kernel, x):
    """The kernel, varying over the mesh axes that x varies over inside `jax.shard_map`.
    A custom VJP's kernel gradient is computed from x and must vary as its kernel does: a
    frozen network's (invariant) kernel on a device's (varying) batch failed so. Adding a zero
    of x's type does what lax's own primitives do (autodiff then sums that gradient over the
    devices); outside shard_map it adds a zero."""
    return kernel + jnp.zeros_like(x, shape=())


def _negative_padding_cropped(x, padding, spec):
    """(x cropped where `padding` is negative, the padding left): the same convolution.
    XLA:CPU's convolution reads outside its input for some negative low paddings (a 1x1
    kernel on 8 channels, rows padded (-1, 1): values of 1e38; docs/measured_facts.md)."""
    if padding == "VALID" or min(min(p) for p in padding) >= 0:
        return x, padding
    config = [(0, 0, 0)] * x.ndim
    for axis, (lo, hi) in zip(spec.lhs_spec[2:], padding):
        config[axis] = (min(lo, 0), min(hi, 0), 0)
    x = jax.lax.pad(x, jnp.zeros((), x.dtype), config)
    padding = tuple((max(lo, 0), max(hi, 0)) for lo, hi in padding)
    return x, "VALID" if all(p == (0, 0) for p in padding) else padding


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None):
    """`lax.conv_general_dilated`; undilated, ungrouped convolutions take `_cpu_conv`, negative
    padding cropped first (or, for wide stride-1 layers, `_conv_by_shifted_matmuls`) when the
    program is lowered for CPU and the plain call elsewhere (`lax.platform_dependent`)."""
    plain = functools.partial(
        jax.lax.conv_general_dilated, window_strides=window_strides, padding=padding,
        lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        precision=precision)
    undilated = all(d in (None, 1) for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
    named_padding = isinstance(padding, str) and padding != "VALID"  # 'SAME': left to lax
    if not undilated or feature_group_count != 1 or named_padding:
        return plain(lhs, rhs)
    if not isinstance(padding, str):  # hashable, and all-zero padding is 'VALID'
        padding = tuple(tuple(p) for p in padding)
        padding = "VALID" if all(p == (0, 0) for p in padding) else padding
    if _takes_shifted_matmuls(lhs, rhs, window_strides, dimension_numbers):
        def cpu(x, kernel):
            return _conv_by_shifted_matmuls(x, _varying_as(kernel, x), padding, precision)
    elif _takes_cell_gradients(lhs, rhs, window_strides, padding, dimension_numbers):
        def cpu(x, kernel):
            return _conv_with_cell_gradients(x, _varying_as(kernel, x), window_strides[0],
                                             padding, precision)
    else:
        def cpu(x, kernel):
            spec = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, dimension_numbers)
            x, cpu_padding = _negative_padding_cropped(x, padding, spec)
            return _cpu_conv(x, kernel, tuple(window_strides), cpu_padding, dimension_numbers,
                             precision)
    return jax.lax.platform_dependent(lhs, rhs, cpu=cpu, default=plain)


# nn.Conv with the convolution above; same parameters and names as nn.Conv.
Conv = functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated)


def leaky_relu(x: jax.Array, negative_slope: float = 0.2) -> jax.Array:
    """LeakyReLU with PyTorch's derivative at 0 (the negative slope; jax.nn.leaky_relu's is 1).

    The value is the same; the choice matters wherever an activation is exactly 0, as in a
    discriminator's first layer on a binary ROI's background while its bias is still 0:
    there every gradient step of Dy differed from PyTorch's (benchmarks/pytorch_twin.py).
    """
    return jnp.where(x > 0, x, negative_slope * x)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    """Mirror-pads the two spatial axes of an NHWC tensor (PyTorch ReflectionPad2d).

    The gradient is `_reflect_pad_backward`'s one pass; XLA differentiates `jnp.pad`'s
    reflect mode into several passes over the padded map (256x256, 64 channels, pad 3:
    14 ms against 1.5 ms on the 2-core CPU; docs/measured_facts.md)."""
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def _added_at(x: jax.Array, part: jax.Array, start: int, axis: int) -> jax.Array:
    """x with `part` added onto its slice from `start` along `axis` (in place in XLA)."""
    starts = [0] * x.ndim
    starts[axis] = start
    return jax.lax.dynamic_update_slice(
        x, jax.lax.dynamic_slice(x, starts, part.shape) + part, starts)


def _unreflected(g: jax.Array, axis: int, pad: int) -> jax.Array:
    """The adjoint of mirror padding by `pad` along one axis: g's interior, with each
    mirrored strip flipped back and added onto the samples it copies."""
    n = g.shape[axis] - 2 * pad
    cut = functools.partial(jax.lax.slice_in_dim, g, axis=axis)
    dx = _added_at(cut(pad, pad + n), jax.lax.rev(cut(0, pad), (axis,)), 1, axis)
    return _added_at(dx, jax.lax.rev(cut(n + pad, n + 2 * pad), (axis,)), n - pad - 1, axis)


def _reflect_pad_forward(x, pad):
    return reflect_pad(x, pad), None


def _reflect_pad_backward(pad, _, g):
    """`_unreflected` along the width of g's top, middle and bottom bands of rows, then along
    the height with the two thin bands added onto the middle one: one pass over g."""
    h = g.shape[1] - 2 * pad
    top, middle, bottom = (_unreflected(jax.lax.slice_in_dim(g, start, stop, axis=1), 2, pad)
                           for start, stop in ((0, pad), (pad, h + pad), (h + pad, h + 2 * pad)))
    middle = _added_at(middle, jax.lax.rev(top, (1,)), 1, 1)
    return (_added_at(middle, jax.lax.rev(bottom, (1,)), h - pad - 1, 1),)


reflect_pad.defvjp(_reflect_pad_forward, _reflect_pad_backward)


def instance_norm(name: str | None = None) -> nn.Module:
    """Instance normalisation as in PyTorch's InstanceNorm2d default: eps 1e-5, no affine.

    The variance is computed in two passes, mean((x - mean)^2), as PyTorch does. flax's
    default E[x^2] - E[x]^2 cancels in float32 where a map's mean is large against its
    spread: CycleGAN's generator gradients were 0.7% off their float64 values with it,
    1.2e-5 with two passes.
    """
    return nn.InstanceNorm(epsilon=1e-5, use_bias=False, use_scale=False,
                           use_fast_variance=False, name=name)


class ConvBlock(nn.Module):
    """Reflect-pad -> conv -> instance norm -> ReLU (one box of Figures 3-4).

    `reflect` is the mirror padding in pixels (0: zero 'SAME'-style padding of
    kernel_size // 2, used where the paper draws no mirror fill layer).
    """

    features: int
    kernel_size: int
    strides: int = 1
    reflect: int = 0

    @nn.compact
    def __call__(self, x):
        if self.reflect:
            x = reflect_pad(x, self.reflect)
            padding = "VALID"
        else:
            padding = [(self.kernel_size // 2, self.kernel_size // 2)] * 2
        # No bias: the instance norm that follows subtracts it again.
        x = Conv(self.features, (self.kernel_size,) * 2, strides=self.strides,
                    padding=padding, use_bias=False)(x)
        return nn.relu(instance_norm()(x))


def transpose_padding(kernel_size: int, strides: int) -> tuple[int, int]:
    """(low, high) padding of the dilated input that makes a transposed convolution
    PyTorch's `ConvTranspose2d(k, s, padding=(k - 1) // 2, output_padding=s + 2p - k)`: the
    output is s times the input, and of the full (s(n - 1) + k)-long output it keeps the
    samples from p on. (lax's 'SAME' keeps one sample earlier for k = 3, s = 2: every
    upsampled map one pixel off PyTorch's, beside the skip it is concatenated with.)"""
    p = (kernel_size - 1) // 2
    output_padding = strides + 2 * p - kernel_size
    if not 0 <= output_padding < strides:
        raise ValueError(f"no PyTorch output padding gives a {strides}x upsampling with "
                         f"kernel {kernel_size}")
    return kernel_size - 1 - p, kernel_size - 1 - p + output_padding


def _phase_taps(kernel_size: int, strides: int):
    """For each output phase r, the (kernel tap t, input offset d) pairs it reads.

    A transposed conv writes o[s*m + r] = sum_t k[t] * x[m + d], d = (r + t - lo) / s,
    over the taps t for which (r + t - lo) is divisible by s.
    """
    lo, _ = transpose_padding(kernel_size, strides)
    return [[(t, (r + t - lo) // strides) for t in range(kernel_size)
             if (r + t - lo) % strides == 0] for r in range(strides)]


def _phase_correlation(x, kernel, taps_h, taps_w, stride):
    """One output phase of a transposed convolution: a stride-1 correlation of x with the
    kernel taps (tap, input offset) that land on it, offsets consecutive."""
    if not taps_h or not taps_w:  # a phase no tap reaches (kernel smaller than the stride)
        return jnp.zeros((*x.shape[:3], kernel.shape[-1]), x.dtype)
    # A phase's taps are every s-th tap: strided slices (a gather would be slower on CPU).
    rows, cols = (slice(taps[0][0], taps[-1][0] + 1, stride) for taps in (taps_h, taps_w))
    padding = [(-taps[0][1], taps[-1][1]) for taps in (taps_h, taps_w)]
    return conv_general_dilated(x, kernel[rows, cols].astype(x.dtype), (1, 1), padding,
                                dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _transposed_conv_by_phases(x, kernel, strides: int):
    """`lax.conv_transpose` with `transpose_padding` as s*s stride-1 correlations, one per phase
    (each with only its own taps: the same multiply-adds as the transposed convolution),
    interleaved by depth-to-space."""
    taps = _phase_taps(kernel.shape[0], strides)
    phases = jnp.stack([jnp.stack([_phase_correlation(x, kernel, taps_h, taps_w, strides)
                                   for taps_w in taps], axis=3) for taps_h in taps], axis=2)
    n, h, _, w, _, c = phases.shape                      # (n, h, r_h, w, r_w, c)
    return phases.reshape(n, h * strides, w * strides, c)


class SubpixelConvTranspose(nn.Module):
    """Strided transposed convolution, aligned as PyTorch's (`transpose_padding`), with
    `nn.ConvTranspose`'s (k, k, C_in, C_out) kernel (PyTorch's (C_in, C_out, k, k) flipped).

    On CPU it is computed as one stride-1 correlation per output phase followed by
    depth-to-space (the sub-pixel form), with each phase's own taps only; elsewhere it is
    `lax.conv_transpose`. XLA:CPU runs the weight gradient of the dilated (transposed)
    form ~25x slower than this, and the sub-pixel form with one shared phase kernel (zeros
    where a phase has no tap: 16 taps for 9 at k=3, s=2) ~1.5-2x slower than the phase-wise
    one (docs/measured_facts.md); the arithmetic is the same.
    """

    features: int
    kernel_size: int = 3
    strides: int = 2
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x):
        k, s = self.kernel_size, self.strides
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features))
        plain = lambda x, kernel: jax.lax.conv_transpose(  # noqa: E731
            x, kernel.astype(x.dtype), (s, s), [transpose_padding(k, s)] * 2,
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        cpu = functools.partial(_transposed_conv_by_phases, strides=s)
        y = jax.lax.platform_dependent(x, kernel, cpu=cpu, default=plain)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return y


class UpBlock(nn.Module):
    """Transposed conv (stride 2, 3x3) -> instance norm -> ReLU: the "deconvolution" boxes."""

    features: int

    @nn.compact
    def __call__(self, x):
        x = SubpixelConvTranspose(self.features, use_bias=False)(x)
        return nn.relu(instance_norm()(x))


class ResizeUpBlock(nn.Module):
    """2x nearest-neighbour upsampling -> 3x3 conv (zero pad 1) -> instance norm -> ReLU.

    The resize-convolution of Odena et al. 2016 ("Deconvolution and checkerboard
    artifacts"): every output pixel sees the same number of input taps, where a 3x3
    stride-2 transposed convolution gives its four output phases 1, 2, 2 and 4 taps.
    """

    features: int

    @nn.compact
    def __call__(self, x):
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        x = Conv(self.features, (3, 3), padding=[(1, 1), (1, 1)], use_bias=False)(x)
        return nn.relu(instance_norm()(x))


# config names of the blocks that upsample by 2 (the RFB's and the U-Net generator's).
UPSAMPLE_BLOCKS = {"transposed": UpBlock, "resize": ResizeUpBlock}


def upsample_block(name: str) -> type[nn.Module]:
    """The upsampling block called `name` ('transposed' or 'resize'); ValueError otherwise."""
    if name not in UPSAMPLE_BLOCKS:
        raise ValueError(f"upsampling must be one of {tuple(UPSAMPLE_BLOCKS)}, got {name!r}")
    return UPSAMPLE_BLOCKS[name]


class SpaceToDepthConv(nn.Module):
    """Stride-1 VALID convolution computed on a space-to-depth grid of `block` x `block` cells.

    Holds the same (k, k, C_in, C_out) kernel as `nn.Conv(padding='VALID')` and returns
    exactly its output, but as one convolution over cells of block^2 * C_in channels with a
    (span, span) kernel producing block^2 * C_out channels, followed by depth-to-space.
    Output pixel b*m + a reads input pixel b*m + a + t = b*(m + d) + e with
    t = b*d + e - a, so the cell kernel holds tap t at (d, e, a) when 0 <= t < k and zero
    elsewhere. For full-resolution 7x7 convolutions with few channels (the generators'
    last layer has one output channel) XLA's CPU convolutions, forward and gradients, are
    several times faster on this shape; the arithmetic is the same.
    """

    features: int
    kernel_size: int
    block: int = 4
    use_bias: bool = True
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x):
        k, b, f = self.kernel_size, self.block, self.features
        _, h_in, w_in, c = x.shape
        kernel = self.param("kernel", self.kernel_init, (k, k, c, f))
        h, w = h_in - k + 1, w_in - k + 1
        if h % b or w % b:
            raise ValueError(f"output size {h}x{w} is not divisible by block {b}")
        span = (b + k - 2) // b + 1
        x = jnp.pad(x, ((0, 0), (0, h + b * (span - 1) - h_in), (0, w + b * (span - 1) - w_in),
                        (0, 0)))
        cells = _space_to_depth(x, b)
        d, e, a = np.meshgrid(np.arange(span), np.arange(b), np.arange(b), indexing="ij")
        taps = b * d + e - a                                      # (span, b, b)
        valid = (taps >= 0) & (taps < k)
        taps = np.clip(taps, 0, k - 1)
        cell_kernel = kernel[taps[:, None, :, None, :, None], taps[None, :, None, :, None, :]]
        mask = valid[:, None, :, None, :, None] & valid[None, :, None, :, None, :]
        cell_kernel = cell_kernel * jnp.asarray(mask[..., None, None], kernel.dtype)
        # (d_h, d_w, e_h, e_w, a_h, a_w, C_in, C_out) -> (d_h, d_w, e_h e_w C_in, a_h a_w C_out)
        cell_kernel = cell_kernel.transpose(0, 1, 2, 3, 6, 4, 5, 7).reshape(
            span, span, b * b * c, b * b * f)
        y = conv_general_dilated(cells, cell_kernel.astype(x.dtype), (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y = _depth_to_space(y, b)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (f,))
        return y


def normal_init(stddev: float = 0.02) -> Callable:
    """N(0, stddev) weights, the initialisation of DCGAN, CycleGAN and pix2pix."""
    return nn.initializers.normal(stddev)


def _scale_init(key, shape, dtype=jnp.float32):
    """BatchNorm scale ~ N(1, 0.02), as the canonical pix2pix/CycleGAN `init_weights`."""
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def batch_norm(train: bool, name: str | None = None) -> nn.Module:
    """BatchNorm with PyTorch's defaults (momentum 0.1 of the new batch, eps 1e-5) and its
    two-pass variance (see `instance_norm`).

    While training, batch statistics are averaged over the mesh's data axis (synchronised
    BatchNorm), so a global batch split over N devices is normalised as on one device.
    """
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        axis_name=DATA_AXIS if train else None, scale_init=_scale_init,
                        use_fast_variance=False, name=name)


def conv4x4(features: int, strides: int, use_bias: bool) -> nn.Module:
    """4x4 convolution with 1 px zero padding (PyTorch Conv2d(k=4, p=1)), N(0, 0.02) init."""
    return Conv(features, (4, 4), strides=strides, padding=[(1, 1), (1, 1)],
                   use_bias=use_bias, kernel_init=normal_init())
