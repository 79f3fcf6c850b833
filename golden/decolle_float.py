"""Float reference of DECOLLE for fully connected layers (both surrogates).

It follows the per-step semantics of nmi-lab/decolle-public (``LIFLayer`` and the local
readouts of ``DECOLLEBase``), one sample at a time with plain SGD, and the same tick order
as the integer model (:mod:`plasticore.golden.decolle`). For each layer, with input spikes
``s`` (for layers above the first, the spikes the layer below emitted this same step)::

    Q_new = beta * Q + (1 - beta) * s                  # presynaptic, per input
    P     = alpha * P + (1 - alpha) * Q                # uses the OLD Q
    Q     = Q_new
    R     = alpha_rp * R - (1 - alpha_rp) * w_rp * S   # S: the neuron's previous spike
    U     = P . W + b + R
    S     = [U > 0]
    r     = S . G + g                                  # fixed random readout (identity on top)
    e     = sigma'(U) * (clip(r - y, -1, 1) . G^T) / K # gradient of the Huber local loss
    W    -= lr * outer(P, e);   b -= lr * e   (the bias only with learn_bias)

``sigma'`` is the boxcar ``1[-window < U <= window]`` or the fast sigmoid
``1 / (10 |U| + 1)**2``. The local loss of a layer is ``mean_k huber(r_k - y_k)`` with
Huber's delta 1 (PyTorch's SmoothL1Loss), whose gradient through the surrogate is ``e``.
Dropout on the readout path, which the reference uses, is left out by default (as in the
integer model); ``readout_dropout`` turns it on, for measuring what leaving it out costs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FloatDecolle", "surrogate_derivative", "surrogate_ramp", "huber_loss",
           "local_error", "SURROGATES"]

SURROGATES = ("boxcar", "fast_sigmoid")
FAST_SIGMOID_SLOPE = 10.0


def surrogate_derivative(membrane, kind: str = "boxcar", window: float = 0.5) -> np.ndarray:
    """``sigma'(U)``: the boxcar ``1[-window < U <= window]`` or ``1/(10|U| + 1)**2``."""
    membrane = np.asarray(membrane, dtype=float)
    if kind == "boxcar":
        return ((membrane > -window) & (membrane <= window)).astype(float)
    if kind == "fast_sigmoid":
        return 1.0 / (FAST_SIGMOID_SLOPE * np.abs(membrane) + 1.0) ** 2
    raise ValueError(f"surrogate = {kind!r}: must be one of {', '.join(SURROGATES)}")


def surrogate_ramp(membrane, kind: str = "boxcar", window: float = 0.5) -> np.ndarray:
    """A smooth stand-in for the spike whose derivative is :func:`surrogate_derivative`.

    Used only to check gradients: ``clip(U, -window, window)`` for the boxcar,
    ``U / (10|U| + 1)`` for the fast sigmoid.
    """
    membrane = np.asarray(membrane, dtype=float)
    if kind == "boxcar":
        return np.clip(membrane, -window, window)
    if kind == "fast_sigmoid":
        return membrane / (FAST_SIGMOID_SLOPE * np.abs(membrane) + 1.0)
    raise ValueError(f"surrogate = {kind!r}: must be one of {', '.join(SURROGATES)}")


def huber_loss(readout, target) -> np.ndarray:
    """Local loss per sample: mean over outputs of Huber(r - y) with delta 1."""
    diff = np.abs(np.asarray(readout, dtype=float) - target)
    return np.where(diff < 1, 0.5 * diff ** 2, diff - 0.5).mean(axis=-1)


def local_error(membrane, spikes, readout, target, kind="boxcar", window=0.5) -> np.ndarray:
    """The surrogate-gated error ``e`` of one layer, ``(batch, n)``.

    ``readout`` is ``(G, g)`` or None for the identity readout of the top layer.
    """
    spikes = np.asarray(spikes, dtype=float)
    target = np.asarray(target, dtype=float)
    if readout is None:
        back = np.clip(spikes - target, -1, 1)
    else:
        G, g = readout
        back = np.clip(spikes @ G + g - target, -1, 1) @ G.T
    return surrogate_derivative(membrane, kind, window) * back / target.shape[-1]


class FloatDecolle:
    """DECOLLE network in float64, stepped one tick at a time (batched when not learning).

    Parameters
    ----------
    weights, biases : list of array_like
        ``weights[l]`` is ``(n_pre, n_post)``, ``biases[l]`` is ``(n_post,)``.
    readouts : list of (G, g) or None
        Fixed readouts, ``G`` ``(n_post, K)``; None for the top layer (identity).
    alpha, beta, alpha_rp, w_rp : float
    window : float
        Half width of the boxcar.
    surrogate : {"boxcar", "fast_sigmoid"}
    learning_rates : sequence of float
        One per layer.
    learn_bias : bool
        Whether ``b -= lr * e`` is applied (the weights always learn).
    readout_dropout : float
        While learning, each spike entering a readout is dropped with this probability (and
        the survivors scaled by ``1 / (1 - p)``), as the reference does; 0 by default.
    dropout_seed : int
        Seeds the dropout masks.
    """

    def __init__(self, weights, biases, readouts, *, alpha, beta, alpha_rp, w_rp, window,
                 surrogate, learning_rates, learn_bias=True, readout_dropout=0.0, dropout_seed=0):
        if surrogate not in SURROGATES:
            raise ValueError(f"surrogate = {surrogate!r}: must be one of {', '.join(SURROGATES)}")
        self.weights = [np.array(w, dtype=float) for w in weights]
        self.biases = [np.array(b, dtype=float) for b in biases]
        self.readouts = [None if r is None else (np.array(r[0], dtype=float), np.array(r[1], dtype=float))
                         for r in readouts]
        self.alpha, self.beta, self.alpha_rp, self.w_rp = alpha, beta, alpha_rp, w_rp
        self.window, self.surrogate = window, surrogate
        self.learning_rates = tuple(learning_rates)
        self.learn_bias = bool(learn_bias)
        self.readout_dropout = float(readout_dropout)
        self._dropout_rng = np.random.default_rng(dropout_seed)
        if len(self.learning_rates) != len(self.weights):
            raise ValueError(f"learning_rates: {len(self.learning_rates)} given, "
                             f"{len(self.weights)} layers")
        self.reset_state(1)

    def reset_state(self, batch: int = 1) -> None:
        """Zero traces, refractory states and spikes (a new sample)."""
        self.Q = [np.zeros((batch, w.shape[0])) for w in self.weights]
        self.P = [np.zeros((batch, w.shape[0])) for w in self.weights]
        self.R = [np.zeros((batch, w.shape[1])) for w in self.weights]
        self.S = [np.zeros((batch, w.shape[1])) for w in self.weights]

    def step(self, spikes, target=None, learn: bool = False):
        """Advance one tick; return ``[(U, S), ...]`` per layer (``(batch, n)`` arrays)."""
        s = np.atleast_2d(np.asarray(spikes, dtype=float))
        if learn:
            if target is None:
                raise ValueError("target: learning needs the one-hot label")
            target = np.atleast_2d(np.asarray(target, dtype=float))
        outputs = []
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            q_old = self.Q[layer]
            self.Q[layer] = self.beta * q_old + (1 - self.beta) * s
            self.P[layer] = self.alpha * self.P[layer] + (1 - self.alpha) * q_old
            self.R[layer] = self.alpha_rp * self.R[layer] - (1 - self.alpha_rp) * self.w_rp * self.S[layer]
            membrane = self.P[layer] @ w + b + self.R[layer]
            s_out = (membrane > 0).astype(float)
            self.S[layer] = s_out
            if learn:
                seen = s_out
                if self.readout_dropout:
                    keep = self._dropout_rng.random(s_out.shape) >= self.readout_dropout
                    seen = s_out * keep / (1 - self.readout_dropout)
                error = local_error(membrane, seen, self.readouts[layer], target,
                                    self.surrogate, self.window)
                lr = self.learning_rates[layer]
                w -= lr * (self.P[layer].T @ error)
                if self.learn_bias:
                    b -= lr * error.sum(axis=0)
            outputs.append((membrane, s_out))
            s = s_out
        return outputs

    def run_sample(self, raster, label=None, learn: bool = False, burn_in: int = 0):
        """Present samples from a fresh state; return top-layer spike counts and membrane sums.

        ``raster`` is ``(ticks, n_in)`` or ``(batch, ticks, n_in)``; learning needs one sample
        and runs from ``burn_in`` on; counts and sums cover the same ticks.
        """
        raster = np.asarray(raster, dtype=bool)
        if raster.ndim == 2:
            raster = raster[None]
        batch, ticks, _ = raster.shape
        if learn and batch != 1:
            raise ValueError(f"batch = {batch}: learning is online, one sample at a time")
        self.reset_state(batch)
        n_classes = self.weights[-1].shape[1]
        target = None
        if learn:
            target = np.zeros((1, n_classes))
            target[0, label] = 1
        counts = np.zeros((batch, n_classes))
        sums = np.zeros((batch, n_classes))
        for t in range(ticks):
            outputs = self.step(raster[:, t], target, learn and t >= burn_in)
            if t >= burn_in:
                counts += outputs[-1][1]
                sums += outputs[-1][0]
        return counts, sums
