"""Test-wide setup: four fake CPU devices, so multi-device code paths run everywhere.

XLA reads the flag once, when JAX first initialises its backend, so it is set here,
before any test module imports jax. Single-device tests build a mesh of one device.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
