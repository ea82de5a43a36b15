"""Module output shapes, the exact sub-pixel transposed conv, the parameter table."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from configs import base
from conftest import tiny_config
from fproi_jax.methods import get_method
from fproi_jax.methods.base import Networks
from fproi_jax.models.discriminator import Discriminator
from fproi_jax.models.generator import Generator
from fproi_jax.mesh import data_mesh
from fproi_jax.models.layers import (ResizeUpBlock, SpaceToDepthConv, SubpixelConvTranspose,
                                     UpBlock, batch_norm,
                                     conv_general_dilated, instance_norm, transpose_padding)
from fproi_jax.models.rfb import RegionalFeatureBlock
from fproi_jax.models import layers
from fproi_jax.models.summary import parameter_table


@pytest.mark.parametrize("kernel_size,strides", [(3, 2), (4, 2), (5, 2), (3, 3), (2, 2)])
def test_subpixel_conv_transpose_equals_conv_transpose(kernel_size, strides):
    x = jax.random.normal(jax.random.key(0), (2, 9, 7, 5))
    layer = SubpixelConvTranspose(3, kernel_size, strides)
    params = layer.init(jax.random.key(1), x)
    params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), params)
    reference = nn.ConvTranspose(3, (kernel_size,) * 2, strides=(strides,) * 2,
                                 padding=[transpose_padding(kernel_size, strides)] * 2)
    got, want = layer.apply(params, x), reference.apply(params, x)
    assert got.shape == want.shape == (2, 9 * strides, 7 * strides, 3)
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("kernel_size,strides", [(3, 2), (4, 2), (5, 2), (3, 3)])
def test_transposed_conv_is_aligned_as_pytorchs(kernel_size, strides):
    """PyTorch's ConvTranspose2d(k, s, padding=p, output_padding=s + 2p - k), p = (k - 1) // 2,
    from its definition: out[s*i + a, s*j + b] += x[i, j] * w[a, b] over the full output,
    cropped to the samples from p on. Its kernel is ours flipped."""
    k, s = kernel_size, strides
    x = np.random.default_rng(0).standard_normal((1, 4, 3, 2)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((k, k, 2, 3)).astype(np.float32)
    full = np.zeros((s * 4 + k, s * 3 + k, 3))  # room for the output padding (zeros)
    for i, j in np.ndindex(4, 3):
        full[s * i:s * i + k, s * j:s * j + k] += np.einsum("c,abco->abo", x[0, i, j], w)
    p = (k - 1) // 2
    want = full[p:p + 4 * s, p:p + 3 * s]
    layer = SubpixelConvTranspose(3, k, s, use_bias=False)
    got = layer.apply({"params": {"kernel": w[::-1, ::-1]}}, x)[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_resize_up_block_has_no_checkerboard_on_flat_input_where_the_transposed_has():
    """A constant map upsampled: the resize-convolution's interior is constant; the 3x3
    stride-2 transposed convolution's four output phases sum 1, 2, 2 and 4 taps."""
    x = jnp.ones((1, 12, 12, 3))
    for block, checkered in ((ResizeUpBlock(4), False), (UpBlock(4), True)):
        out = block.apply(block.init(jax.random.key(0), x), x)
        assert out.shape == (1, 24, 24, 4)
        interior = np.asarray(out[0, 4:-4, 4:-4])
        assert (float(interior.std(axis=(0, 1)).max()) > 1e-3) == checkered, block


@pytest.mark.parametrize("shape,features,kernel_size,block", [
    ((2, 38, 30, 5), 3, 7, 4), ((1, 38, 38, 64), 1, 7, 2), ((1, 20, 20, 3), 2, 3, 2)])
def test_space_to_depth_conv_equals_valid_conv(shape, features, kernel_size, block):
    x = jax.random.normal(jax.random.key(0), shape)
    layer = SpaceToDepthConv(features, kernel_size, block)
    params = layer.init(jax.random.key(1), x)
    params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), params)
    reference = nn.Conv(features, (kernel_size,) * 2, padding="VALID")
    got, want = layer.apply(params, x), reference.apply(params, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="not divisible by block 3"):
        SpaceToDepthConv(features, kernel_size, 3).init(jax.random.key(0), x[:, :-1])


@pytest.mark.parametrize("shape,pad", [((2, 9, 7, 3), 1), ((1, 12, 10, 4), 3), ((2, 4, 5, 2), 3)])
def test_reflect_pad_equals_numpys_in_value_and_its_gradient_jnp_pads(shape, pad):
    """The value against numpy's reflect mode; the one-pass gradient against autodiff of
    jnp.pad's, with a cotangent whose every entry differs (so a strip added onto the wrong
    rows, or left out, shows)."""
    x = jax.random.normal(jax.random.key(0), shape)
    widths = ((0, 0), (pad, pad), (pad, pad), (0, 0))
    np.testing.assert_array_equal(jax.jit(layers.reflect_pad, static_argnums=1)(x, pad),
                                  np.pad(np.asarray(x), widths, mode="reflect"))
    g = jax.random.normal(jax.random.key(1), (shape[0], shape[1] + 2 * pad,
                                              shape[2] + 2 * pad, shape[3]))
    (got,) = jax.jit(jax.vjp(lambda x: layers.reflect_pad(x, pad), x)[1])(g)
    (want,) = jax.vjp(lambda x: jnp.pad(x, widths, mode="reflect"), x)[1](g)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


SMALL = ((2, 17, 14, 3), (5, 4, 3, 6))
SINGLE = ((1, 17, 14, 3), (5, 4, 3, 6))              # one example, as on each of 4 devices
PER_EXAMPLE = ((2, 130, 130, 32), (3, 3, 32, 32))  # 302 MFLOP per example
ODD_CHANNELS = ((2, 17, 14, 17), (5, 4, 17, 6))     # as G's first layer: image + RFB
WIDE = ((2, 9, 8, 256), (3, 3, 256, 256))            # shifted matrix products
WIDE_PHASE = ((1, 5, 6, 512), (2, 2, 512, 128))      # a transposed conv's phase, as Pix2Pix's
STRIDED = ((2, 12, 10, 64), (4, 4, 64, 128))         # gradients on 2x2 cells, as the Ds' 4x4
ODD_STRIDED = ((1, 11, 9, 32), (4, 4, 32, 256))      # cells padded to a whole number
STRIDE_3 = ((1, 10, 11, 16), (3, 3, 16, 256))        # 3x3 cells, 9 x 16 x 256 pairs


@pytest.mark.parametrize("shapes,padding,strides", [
    (SMALL, "VALID", (1, 1)), (SINGLE, "VALID", (1, 1)), (SMALL, [(0, 0), (0, 0)], (2, 2)),
    (SMALL, "VALID", (2, 1)), (SMALL, [(1, 1), (1, 1)], (1, 1)), (PER_EXAMPLE, "VALID", (1, 1)),
    (ODD_CHANNELS, "VALID", (1, 1)), (ODD_CHANNELS, [(2, 2), (1, 2)], (2, 1)),
    (WIDE, "VALID", (1, 1)), (WIDE, [(1, 1), (1, 1)], (1, 1)),
    (WIDE_PHASE, [(-1, 1), (0, 1)], (1, 1)), (WIDE, [(1, 1), (1, 1)], (2, 2))])
def test_conv_general_dilated_equals_lax_in_value_and_gradients(shapes, padding, strides):
    _assert_conv_equals_lax(shapes, padding, strides)


@pytest.mark.parametrize("shapes,padding,strides", [
    (STRIDED, [(1, 1), (1, 1)], (2, 2)), (ODD_STRIDED, [(1, 2), (0, 1)], (2, 2)),
    (STRIDE_3, [(1, 1), (2, 0)], (3, 3))])
def test_gradients_on_space_to_depth_cells_equal_lax(monkeypatch, shapes, padding, strides):
    """Small layers made to take the cell form (layers._takes_cell_gradients)."""
    monkeypatch.setattr(layers, "CELL_MIN_FLOPS", 0)
    _assert_conv_equals_lax(shapes, padding, strides)


@pytest.mark.parametrize("shapes,padding,strides", [
    (SMALL, "VALID", (1, 1)), (SINGLE, "VALID", (2, 1)), (SMALL, "VALID", (2, 2)),
    (SMALL, [(1, 1), (1, 1)], (1, 1))])
def test_kernel_gradients_summed_over_parts_equal_lax(monkeypatch, shapes, padding, strides):
    """Every layer split into parts (layers._kernel_gradient_parts): each example alone and,
    unpadded, in row tiles of 30 positions: 2 rows of 13 x 11 outputs (the last tile 1 row),
    2 of 7 x 11 and 5 of 7 x 6; padded, whole examples."""
    monkeypatch.setattr(layers, "PART_MIN_FLOPS", 0)
    monkeypatch.setattr(layers, "TILE_POSITIONS", 30)
    _assert_conv_equals_lax(shapes, padding, strides)


def _assert_conv_equals_lax(shapes, padding, strides):
    """Our convolution's value and gradients for random x and kernel of these shapes equal
    lax.conv_general_dilated's."""
    x = jax.random.normal(jax.random.key(0), shapes[0])
    kernel = jax.random.normal(jax.random.key(1), shapes[1]) / np.sqrt(np.prod(shapes[1][:3]))
    numbers = ("NHWC", "HWIO", "NHWC")

    def loss(conv, x, kernel):  # a non-linear readout, so the gradients depend on the output
        return jnp.sum(jnp.sin(conv(x, kernel, strides, padding, dimension_numbers=numbers)))

    ours = jax.jit(jax.value_and_grad(functools.partial(loss, conv_general_dilated), (0, 1)))
    plain = jax.jit(jax.value_and_grad(functools.partial(loss, jax.lax.conv_general_dilated),
                                       (0, 1)))
    (got, got_grads), (want, want_grads) = ours(x, kernel), plain(x, kernel)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # A kernel gradient sums over every position in float32: its rounding grows with its
    # scale. WIDE's reach 35, where each form, summed in its own order, is within 2.4e-5 of
    # float64, the shifted products the closer; PER_EXAMPLE's 498, where lax is 1.6e-3 off
    # float64 and the sum over row tiles 5.3e-4.
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=max(1e-5, 4e-6 * np.abs(w).max()))


def test_unpadded_convs_run_padded_and_cropped_on_cpu_only():
    """Single examples too (layers._cpu_conv): their gradients equal lax's (SINGLE above)."""
    kernel = jnp.zeros((7, 7, 3, 4))
    conv = functools.partial(conv_general_dilated, window_strides=(1, 1), padding="VALID",
                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
    for n in (1, 2):
        x = jnp.zeros((n, 16, 16, 3))
        lowered = {platform: jax.jit(conv).trace(x, kernel).lower(lowering_platforms=(platform,))
                   for platform in ("cpu", "cuda")}
        cpu, cuda = (lowered[p].as_text() for p in ("cpu", "cuda"))
        assert "pad = [[0, 1], [0, 1]]" in cpu and f"tensor<{n}x11x11x4xf32>" in cpu
        assert "pad = [[0, 1], [0, 1]]" not in cuda and f"tensor<{n}x10x10x4xf32>" in cuda
        assert jax.jit(conv)(x, kernel).shape == (n, 10, 10, 4)


@pytest.mark.parametrize("channels,taps,rows", [(8, 1, (-1, 1)), (16, 1, (-2, 1)),
                                                (8, 3, (-2, 2)), (4, 2, (-1, 1))])
def test_negative_padding_is_cropped_where_xla_cpu_reads_outside_the_input(channels, taps, rows):
    """Shapes for which XLA:CPU's own convolution returned values of up to 1e38 (jax 0.10.2):
    ours equals a float64 reference, the rows cropped and padded by hand."""
    x = jax.random.normal(jax.random.key(0), (2, 9, 7, channels))
    kernel = jax.random.normal(jax.random.key(1), (taps, 1, channels, 3))
    got = conv_general_dilated(x, kernel, (1, 1), (rows, (0, 0)),
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
    lo, hi = rows
    padded = np.asarray(x, np.float64)[:, -lo:]                    # lo < 0: crop
    padded = np.pad(padded, ((0, 0), (0, hi), (0, 0), (0, 0)))    # hi > 0: zeros
    out_rows = padded.shape[1] - taps + 1
    want = sum(np.einsum("nhwc,co->nhwo", padded[:, i:i + out_rows], np.asarray(kernel[i, 0]))
               for i in range(taps))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("x_shape,kernel_shape,strides,padding,parts", [
    ((4, 130, 130, 32), (3, 3, 32, 32), (1, 1), "VALID", 4 * 8),  # 302 MFLOP per example
    ((1, 130, 130, 32), (3, 3, 32, 32), (1, 1), "VALID", 8),      # 8 tiles of 16 x 128
    ((4, 262, 262, 32), (3, 3, 32, 32), (2, 2), "VALID", 4 * 9),  # 15 rows of 130, 302 MFLOP
    ((4, 128, 128, 32), (3, 3, 32, 32), (1, 1), [(1, 1)] * 2, 4),  # padded: whole examples
    ((1, 128, 128, 32), (3, 3, 32, 32), (1, 1), [(1, 1)] * 2, 1),
    ((4, 66, 66, 32), (3, 3, 32, 32), (1, 1), "VALID", 1),        # 75 MFLOP: too little
    ((4, 130, 130, 32), (3, 3, 32, 32), (2, 2), "VALID", 1)])     # strided, 75 MFLOP
def test_kernel_gradients_are_summed_over_parts_only_where_that_was_faster(
        x_shape, kernel_shape, strides, padding, parts):
    """The CPU program of the kernel gradient (alone: the forward pass and the input
    gradient are not needed) has one convolution per part of the output where
    layers._kernel_gradient_parts says so (examples, and row tiles of about
    layers.TILE_POSITIONS positions), else one."""
    x, kernel = jnp.zeros(x_shape), jnp.zeros(kernel_shape)

    def loss(kernel):
        return jnp.sum(conv_general_dilated(x, kernel, strides, padding,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")))

    text = jax.jit(jax.grad(loss)).trace(kernel).lower(lowering_platforms=("cpu",)).as_text()
    assert text.count("stablehlo.convolution") == parts


@pytest.mark.parametrize("x_shape,kernel_shape,strides,shifted", [
    ((1, 66, 66, 256), (3, 3, 256, 256), (1, 1), True),    # CycleGAN's residual blocks
    ((1, 9, 9, 1024), (2, 2, 1024, 512), (1, 1), True),    # Pix2Pix's inner phases
    ((1, 66, 66, 128), (3, 3, 128, 128), (1, 1), False),   # too few channel pairs
    ((1, 66, 66, 256), (3, 3, 256, 256), (2, 2), False)])  # strided
def test_wide_stride_one_convs_run_as_shifted_matrix_products_on_cpu_only(
        x_shape, kernel_shape, strides, shifted):
    """Where layers._takes_shifted_matmuls says so, the CPU program of the forward pass and
    both gradients has no convolution: one matrix product for the output and one for each
    gradient, whatever the kernel's size. Other platforms keep the convolution."""
    x, kernel = jnp.zeros(x_shape), jnp.zeros(kernel_shape)

    def loss(x, kernel):
        return jnp.sum(conv_general_dilated(x, kernel, strides, "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")))

    grad = jax.jit(jax.value_and_grad(loss, (0, 1)))
    cpu, cuda = (grad.trace(x, kernel).lower(lowering_platforms=(p,)).as_text()
                 for p in ("cpu", "cuda"))
    assert ("stablehlo.convolution" not in cpu) == shifted
    assert cpu.count("stablehlo.dot_general") == (3 if shifted else 0)
    assert "stablehlo.dot_general" not in cuda and "stablehlo.convolution" in cuda


@pytest.mark.parametrize("x_shape,kernel_shape,strides,padding,cells", [
    ((1, 128, 128, 64), (4, 4, 64, 128), (2, 2), [(1, 1), (1, 1)], True),  # a D's 4x4 layer
    ((1, 120, 121, 16), (3, 3, 16, 256), (3, 3), [(1, 1), (2, 0)], True),
    ((1, 128, 128, 32), (4, 4, 32, 64), (2, 2), [(1, 1), (1, 1)], False),  # too few pairs
    ((4, 16, 16, 64), (4, 4, 64, 128), (2, 2), [(1, 1), (1, 1)], False),   # paper demo size
    ((1, 64, 64, 64), (3, 3, 64, 128), (2, 2), [(1, 1), (1, 1)], False),   # 3 taps, stride 2
    ((1, 64, 64, 64), (4, 4, 64, 128), (2, 2), "VALID", False),
    ((1, 64, 64, 64), (4, 4, 64, 128), (2, 2), [(-1, 1), (1, 1)], False)])
def test_wide_strided_convs_take_their_gradients_on_space_to_depth_cells_on_cpu_only(
        x_shape, kernel_shape, strides, padding, cells):
    """Where layers._takes_cell_gradients says so (enough channel pairs and FLOPs per
    example; the padding explicit and not negative), the CPU program keeps the forward
    convolution and computes both gradients as matrix products on cells: one for each.
    Other platforms keep lax's."""
    x, kernel = jnp.zeros(x_shape), jnp.zeros(kernel_shape)

    def loss(x, kernel):
        return jnp.sum(conv_general_dilated(x, kernel, strides, padding,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")))

    grad = jax.jit(jax.value_and_grad(loss, (0, 1)))
    cpu, cuda = (grad.trace(x, kernel).lower(lowering_platforms=(p,)).as_text()
                 for p in ("cpu", "cuda"))
    assert cpu.count("stablehlo.dot_general") == (2 if cells else 0)
    assert cpu.count("stablehlo.convolution") == (1 if cells else 3)
    assert "stablehlo.dot_general" not in cuda



    """Differentiated as written, the product of the windows would keep the shifted windows
    of a layer's input (when they were all nine of a 3x3 layer's, CycleGAN at 256 px went
    from 3.8 to 9.0 GB resident); its custom backward pass recomputes them from x."""
    x, kernel = jnp.ones((1, 18, 18, 256)), jnp.ones((3, 3, 256, 256))
    _, backward = jax.vjp(lambda x, k: layers._conv_by_shifted_matmuls(x, k, "VALID"),
                          x, kernel)
    kept = sum(leaf.size for leaf in jax.tree.leaves(backward) if hasattr(leaf, "size"))
    assert kept == x.size + kernel.size


def test_shifted_matrix_products_hold_no_windows_from_the_forward_pass_to_the_backward():
    """XLA's temporaries for six wide layers, forward and gradients: 2.9x the plain
    convolutions' (the windows laid side by side, one layer at a time); 5.5x when XLA shared
    the backward pass's windows with the forward pass's and 5.8x when the forward pass was a
    sum of per-tap products, each held until the backward pass."""
    def temporaries(conv):
        def loss(x, kernels):
            for kernel in kernels:
                x = jnp.tanh(conv(x, kernel, (1, 1), [(1, 1), (1, 1)],
                                  dimension_numbers=("NHWC", "HWIO", "NHWC")))
            return jnp.sum(x)
        x, kernels = jnp.zeros((1, 32, 32, 256)), [jnp.zeros((3, 3, 256, 256))] * 6
        compiled = jax.jit(jax.grad(loss, (0, 1))).lower(x, kernels).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    assert temporaries(conv_general_dilated) < 4 * temporaries(jax.lax.conv_general_dilated)


@pytest.mark.parametrize("shapes,padding,strides", [
    (WIDE, [(1, 1), (1, 1)], (1, 1)), (STRIDED, [(1, 1), (1, 1)], (2, 2))])
def test_custom_gradient_convs_take_a_frozen_kernel_on_a_devices_batch(shapes, padding, strides):
    """Inside shard_map, a frozen network's kernel (the same on every device) on a device's
    shard of the batch, differentiated in x only, as the discriminators in the generators'
    update: the custom VJPs' kernel gradient must vary as the kernel does (it failed with
    'the manual axis types do not match'); the gradient equals lax's, on 4 devices."""
    mesh = data_mesh(jax.devices()[:4])
    x = jax.device_put(jax.random.normal(jax.random.key(0), (4, *shapes[0][1:])),
                       NamedSharding(mesh, P("data")))
    kernel = jax.random.normal(jax.random.key(1), shapes[1]) / np.sqrt(np.prod(shapes[1][:3]))

    def input_gradient(conv):
        def per_device(x, kernel):
            return jax.grad(lambda x: jnp.sum(jnp.sin(conv(
                x, kernel, strides, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")))))(x)
        return jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P("data"), P()),
                                     out_specs=P("data")))(x, kernel)

    np.testing.assert_allclose(input_gradient(conv_general_dilated),
                               input_gradient(jax.lax.conv_general_dilated), rtol=1e-5,
                               atol=1e-5)


def test_transposed_convs_run_by_phases_on_cpu_and_as_conv_transpose_elsewhere():
    layer, x = SubpixelConvTranspose(4, 3, 2), jnp.zeros((1, 8, 8, 3))
    params = layer.init(jax.random.key(0), x)
    cpu, cuda = (jax.jit(layer.apply).trace(params, x).lower(lowering_platforms=(p,)).as_text()
                 for p in ("cpu", "cuda"))
    assert cpu.count("stablehlo.convolution") == 4 and "lhs_dilate = [2, 2]" not in cpu
    assert cuda.count("stablehlo.convolution") == 1 and "lhs_dilate = [2, 2]" in cuda


def test_normalisations_compute_the_variance_in_two_passes():
    """Maps with a mean far above their spread, normalised in float32, against float64.

    E[x^2] - E[x]^2 (flax's default) cancels here: with it, instance norm and BatchNorm
    were each 0.06 off; mean((x - mean)^2) stays within 1e-3."""
    x = (20.0 + 0.1 * np.random.default_rng(0).standard_normal((2, 16, 16, 3))).astype(
        np.float32).astype(np.float64)  # the float32 values, normalised in float64
    centred = x - x.mean(axis=(1, 2), keepdims=True)
    want = centred / np.sqrt(np.square(centred).mean(axis=(1, 2), keepdims=True) + 1e-5)
    norm = instance_norm()
    got = norm.apply(norm.init(jax.random.key(0), x), x.astype(np.float32))
    np.testing.assert_allclose(got, want, atol=1e-3)

    centred = x - x.mean(axis=(0, 1, 2), keepdims=True)
    want = centred / np.sqrt(np.square(centred).mean(axis=(0, 1, 2), keepdims=True) + 1e-5)
    norm = batch_norm(train=True)
    variables = norm.init(jax.random.key(0), x.astype(np.float32))
    train = jax.shard_map(lambda v, x: norm.apply(v, x, mutable=["batch_stats"])[0],
                          mesh=data_mesh(jax.devices()[:1]), in_specs=P(), out_specs=P())
    got = jax.jit(train)(variables, x.astype(np.float32))
    scale = np.asarray(variables["params"]["scale"])  # N(1, 0.02), as the reference
    np.testing.assert_allclose(got, want * scale, atol=1e-3)


def _output_shape(module, *inputs):
    params = jax.eval_shape(module.init, jax.random.key(0), *inputs)
    return jax.eval_shape(module.apply, params, *inputs).shape


@pytest.mark.parametrize("size", [32, 256])
def test_module_output_shapes(size):
    image = jax.ShapeDtypeStruct((2, size, size, 1), jnp.float32)
    fused = jax.ShapeDtypeStruct((2, size, size, 33), jnp.float32)
    assert _output_shape(RegionalFeatureBlock(), image) == (2, size, size, 32)
    assert _output_shape(Generator(), fused) == (2, size, size, 1)
    assert _output_shape(Generator(), image) == (2, size, size, 1)
    assert _output_shape(Discriminator(), image) == (2,)


def test_generator_bottleneck_is_128_by_64_by_64_at_256():
    """Paper section 2.2.2: after three convolutions, a 128-channel 64 x 64 map."""
    x = jnp.zeros((1, 256, 256, 1))
    params = jax.eval_shape(Generator().init, jax.random.key(0), x)
    _, state = jax.eval_shape(
        lambda p: Generator().apply(p, x, capture_intermediates=True), params)
    assert state["intermediates"]["ConvBlock_2"]["__call__"][0].shape == (1, 64, 64, 128)


def test_discriminator_flattens_16_by_16_by_512_at_256():
    params = jax.eval_shape(Discriminator().init, jax.random.key(0), jnp.zeros((1, 256, 256, 1)))
    assert params["params"]["Dense_0"]["kernel"].shape == (16 * 16 * 512, 1)


def test_discriminator_names_its_smallest_input():
    """Four stride-2 blocks take 16 px to 1 px; 8 px would reach 0 (a ZeroDivisionError in
    the initialiser before this check)."""
    Discriminator().init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)))
    with pytest.raises(ValueError, match=r"needs images of at least 16x16 px, got \(1, 8, 8, 1\)"):
        Discriminator().init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))


def test_generator_rejects_sizes_not_divisible_by_4():
    with pytest.raises(ValueError, match="divisible by 4"):
        Generator().init(jax.random.key(0), jnp.zeros((1, 30, 32, 1)))


REFERENCE_ACTIVATIONS = {
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "tanh": np.tanh,
    "linear": lambda v: v,
}


@pytest.mark.parametrize("activation", sorted(REFERENCE_ACTIVATIONS))
def test_generator_output_is_its_activation_of_the_last_conv(activation):
    """The output is exactly output_activation(pre-activation of the last 7x7 conv): a range
    check alone passes for any squashing function."""
    generator = Generator(width=4, output_activation=activation)
    x = jax.random.uniform(jax.random.key(0), (1, 16, 16, 2))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda p: rng.normal(0.0, 0.5, p.shape).astype(np.float32),
                          jax.eval_shape(generator.init, jax.random.key(0), x))
    out, state = jax.jit(lambda p, x: generator.apply(p, x, capture_intermediates=True))(
        params, x)
    pre = np.asarray(state["intermediates"]["SpaceToDepthConv_0"]["__call__"][0], np.float64)
    assert pre.shape == out.shape == (1, 16, 16, 1)
    assert pre.min() < -2 and pre.max() > 2  # both signs, beyond where activations agree
    np.testing.assert_allclose(out, REFERENCE_ACTIVATIONS[activation](pre), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("name, use_rfb", [("fproi_gan", True), ("fproi_gan_no_rfb", False)])
def test_both_synthesis_paths(name, use_rfb):
    config = tiny_config(base.get_config().data, name)
    config.data.image_size = 32
    method = get_method(config)
    params, batch_stats = method.init(jax.random.key(0), (32, 32))
    variables = {"params": params, "batch_stats": batch_stats}
    assert ("rfb" in params["G"]) == use_rfb
    x = jax.random.uniform(jax.random.key(1), (3, 32, 32, 1))
    y = (x > 0.5).astype(jnp.float32)
    out = method.samples(variables, {"image": x, "roi": y})
    assert method.sample_names == ("x", "G(x)", "F(G(x))", "y", "F(y)", "G(F(y))")
    assert set(out) == set(method.sample_names)
    for name in method.sample_names:
        assert out[name].shape == (3, 32, 32, 1)
        assert float(out[name].min()) >= 0.0 and float(out[name].max()) <= 1.0
    # The RFB makes G depend on the ROI; without it, G sees the image alone.
    changed, _ = method.image_synthesis(variables, x, 1.0 - y)
    assert bool(jnp.any(changed != out["G(x)"])) == use_rfb


def _seen_by_blocks(call, *args):
    """Runs call(*args) (jitted) and returns what the RFB and the generators were applied to,
    in order: {'RegionalFeatureBlock' | 'Generator': [(input, output), ...]}. Read with
    flax's method interceptor, so it does not depend on how FproiGAN forms G's input."""

    def run(*args):
        seen = {}

        def record(next_fun, call_args, kwargs, context):
            out = next_fun(*call_args, **kwargs)
            if context.method_name == "__call__" and isinstance(
                    context.module, (RegionalFeatureBlock, Generator)):
                seen.setdefault(type(context.module).__name__, []).append((call_args[0], out))
            return out

        with nn.intercept_methods(record):
            call(*args)
        return seen

    return jax.jit(run)(*args)


def test_rfb_sees_the_regional_image_x_times_y():
    """Paper 2.2.1: G's input is concat(x, RFB(x * y)); the RFB sees the image inside the ROI
    only, so the image outside the ROI, and the ROI where the image is 0, cannot reach it."""
    config = tiny_config(base.get_config().data)
    config.data.image_size = 32
    method = get_method(config)
    # Random weights of the initialised shapes (faster than running init on CPU).
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda p: rng.normal(0.0, 0.3, p.shape).astype(np.float32),
                          jax.eval_shape(lambda: method.init(jax.random.key(0), (32, 32)))[0])
    variables = {"params": params, "batch_stats": {}}
    x = jax.random.uniform(jax.random.key(1), (1, 32, 32, 1), minval=0.1, maxval=1.0)
    other = jax.random.uniform(jax.random.key(2), x.shape, minval=0.1, maxval=1.0)
    rows, cols = np.indices((32, 32))
    y = jnp.asarray(((rows - 14) ** 2 + (cols - 17) ** 2 <= 49)[None, :, :, None], jnp.float32)
    band = jnp.asarray((rows < 6)[None, :, :, None], jnp.float32)  # outside the ROI
    x0 = x * (1.0 - band)  # the image is 0 in the band
    # One batch (instance norm: examples are independent): 0 as given; 1 x changed outside
    # the ROI; 2 x changed inside; 3 and 4 x0 with y, then with y grown over the band.
    xs = jnp.concatenate([x, jnp.where(y > 0, x, other), jnp.where(y > 0, other, x), x0, x0])
    ys = jnp.concatenate([y, y, y, y, jnp.maximum(y, band)])

    seen = _seen_by_blocks(
        lambda v, x, y: method.to_roi(Networks(method.modules, v["params"], {}, False), x, y),
        variables, xs, ys)
    (rfb_input, features), = seen["RegionalFeatureBlock"]
    (g_input, _), = seen["Generator"]
    np.testing.assert_array_equal(rfb_input, xs * ys)
    assert features.shape == (5, 32, 32, 4)
    np.testing.assert_array_equal(g_input, jnp.concatenate([xs, features], axis=-1))
    # x changed outside the ROI: the same features; inside: different features.
    np.testing.assert_allclose(features[1], features[0], atol=1e-6)
    assert float(jnp.max(jnp.abs(features[2] - features[0]))) > 1e-3
    # y grown where x is 0: the same features.
    np.testing.assert_allclose(features[4], features[3], atol=1e-6)

    # ROI synthesis: G(concat(F(y), RFB(F(y) * y))).
    seen = _seen_by_blocks(method.roi_synthesis, variables, ys)
    (f_input, f_y), (fused, _) = seen["Generator"]
    np.testing.assert_array_equal(f_input, ys)
    (rfb_input, features), = seen["RegionalFeatureBlock"]
    np.testing.assert_allclose(rfb_input, f_y * ys, atol=1e-6)
    np.testing.assert_array_equal(fused, jnp.concatenate([f_y, features], axis=-1))


def test_parameter_table_totals():
    config = base.get_config()
    config.data.image_size = 64
    params, _ = get_method(config).init(jax.random.key(0), (64, 64))
    table = parameter_table(params)
    for name in ("G", "F", "Dx", "Dy"):
        total = sum(p.size for p in jax.tree.leaves(params[name]))
        assert f"| **{name}** | | **total** | **{total:,}** |" in table
    assert "| G | rfb/ConvBlock_0/Conv_0 | kernel (7, 7, 1, 32) | 1,568 |" in table


def test_rfb_upsampling_is_chosen_by_name():
    x = jnp.zeros((1, 16, 16, 1))
    resize = RegionalFeatureBlock((4, 8, 8, 4), "resize")
    assert "ResizeUpBlock_0" in resize.init(jax.random.key(0), x)["params"]
    assert "UpBlock_0" in RegionalFeatureBlock((4, 8, 8, 4)).init(jax.random.key(0), x)["params"]
    with pytest.raises(ValueError, match="upsampling must be one of .*got 'bilinear'"):
        RegionalFeatureBlock((4, 8, 8, 4), "bilinear").init(jax.random.key(0), x)


def test_segmenter_is_a_four_level_unet_with_logits_of_the_image_size():
    from fproi_jax.models.segmenter import Segmenter
    x = jnp.zeros((2, 32, 32, 1))
    model = Segmenter(features=(4, 4, 8, 16, 32, 4))
    variables = model.init(jax.random.PRNGKey(0), x)
    assert set(variables) == {"params"}  # instance norm: no running statistics
    assert model.apply(variables, x).shape == (2, 32, 32, 1)
    # one TwoConv per level and four transposed convs: 9 TwoConvs, 18 convs of 3x3
    kernels = [leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(variables)
               if path[-1].key == "kernel"]
    assert sum(k[:2] == (3, 3) for k in kernels) == 18
    assert sum(k[:2] == (2, 2) for k in kernels) == 4
    with pytest.raises(ValueError, match="Segmenter input height and width must be divisible"):
        model.apply(variables, jnp.zeros((1, 24, 24, 1)))
