"""Deterministic values for tf-cpn's variables (numpy only, no torch, no TF).

The TF side (tf-cpn's graph built with tf.compat.v1 + tf_slim under /tmp) and
tests/tools/test_convert_tf_cpn.py fill the same variable names with these
arrays, so the golden outputs recorded from TF can be checked without TF.
Scales keep a 50/101-layer random network's activations finite: conv weights
N(0, 1/fan_in), BN gamma U(0.5, 1), beta/mean/bias 0.1 N(0, 1), variance U(0.5, 1.5).
"""
import zlib

import numpy as np


def tf_value(name: str, shape: list[int]) -> np.ndarray:
    rng = np.random.RandomState(zlib.crc32(name.encode()))
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "weights":
        value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))
    elif leaf == "gamma":
        value = rng.uniform(0.5, 1.0, shape)
    elif leaf == "moving_variance":
        value = rng.uniform(0.5, 1.5, shape)
    elif leaf in ("beta", "moving_mean", "biases"):
        value = 0.1 * rng.standard_normal(shape)
    else:
        raise ValueError(f"no value rule for {name}")
    return value.astype(np.float32)


def tf_values(specs) -> dict[str, np.ndarray]:
    """``specs``: ``[name, shape, dtype]`` rows (the TF variable list)."""
    return {name: tf_value(name, shape) for name, shape, _ in specs}
