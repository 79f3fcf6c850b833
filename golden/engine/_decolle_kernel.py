"""The compiled tick of DECOLLE: exactly the arithmetic of :mod:`plasticore.golden.decolle`.

That module's docstring is the specification (steps 1 to 5 of a tick, the rounding draws);
it is not repeated here. One sample's state is a row of flat arrays: traces ``Q``, ``P``
per layer input, back to back; refractory ``R``, spikes ``S`` and membranes ``U`` per neuron.
A batch of samples with learning off runs in parallel: the kernels release the GIL, and
threads run disjoint ranges of samples.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._threefry import clamp_flag, threefry_words

(C_TRACE_BITS, C_UNIT_BITS, C_REFRACTORY_WEIGHT, C_WINDOW, C_ERROR_LIMIT, C_LEARN_BIAS,
 C_STOCHASTIC, C_ROUNDS, C_SEED, C_STREAM, C_M_LOW, C_M_HIGH, C_W_LOW, C_W_HIGH,
 C_WEIGHTS_IN_RANGE, C_SIZE) = range(16)
# C_WEIGHTS_IN_RANGE: the caller checked that every weight lies in [w_low, w_high] (as the
# model keeps them); then a row whose trace is 0 is skipped, as it cannot change (see _learn).

F_MEMBRANE = 1 << 0
F_WEIGHT = 1 << 1


@njit(cache=True, nogil=True)
def run_sample(C, layers, q_shifts, p_shifts, r_shifts, error_shifts, lr_shifts, W, W_float,
               B, G, g, Q, P, R, S, U, raster, targets, learn, tick0, count_from, counts, sums):
    """Run the ticks of ``raster`` (``(ticks, n_in)``) on one sample's state; return the flags.

    ``learn[t]`` says whether tick ``t`` learns, with the one-hot ``targets[min(t, len - 1)]``;
    tick ``t`` draws with counter ``tick0 + t``. The top layer's spikes and membranes from
    tick ``count_from`` on are added to ``counts`` and ``sums``.
    """
    n_layers = layers.size - 1
    n_out = layers[n_layers]
    tb, ub = C[C_TRACE_BITS], C[C_UNIT_BITS]
    m_low, m_high, w_low, w_high = C[C_M_LOW], C[C_M_HIGH], C[C_W_LOW], C[C_W_HIGH]
    widest = max(1, layers.max())
    acc = np.empty(widest, dtype=np.float64)
    inputs = np.empty(widest, dtype=np.bool_)
    error_q = np.empty(widest, dtype=np.int64)
    gap_q = np.empty(widest, dtype=np.int64)
    gap_p = np.empty(widest, dtype=np.int64)
    error_dense = np.empty(widest, dtype=np.int64)
    columns = np.empty(widest, dtype=np.int64)
    readout = np.empty(n_out, dtype=np.int64)
    synapses = 1      # the most synapses (bias rows included) of one layer
    for layer in range(n_layers):
        synapses = max(synapses, (layers[layer] + 1) * layers[layer + 1])
    blocks = np.empty(synapses, dtype=np.int64)
    word0 = np.empty(synapses, dtype=np.uint32)
    word1 = np.empty(synapses, dtype=np.uint32)
    draws = np.empty(synapses + 4, dtype=np.int64)
    flags = 0
    for t in range(raster.shape[0]):
        target = targets[min(t, targets.shape[0] - 1)]
        for j in range(layers[0]):
            inputs[j] = raster[t, j]
        q_base = 0
        n_base = 0
        w_base = 0
        syn_base = 0       # global synapse index of the layer's first synapse (bias rows included)
        g_base = 0
        for layer in range(n_layers):
            n_pre, n_post = layers[layer], layers[layer + 1]
            # The layer's views, indexed from 0 by range variables: the loops compile to
            # SIMD code (Numba's wraparound check on an index like base + i would not).
            q_of, p_of = Q[q_base:q_base + n_pre], P[q_base:q_base + n_pre]
            r_of, s_of = R[n_base:n_base + n_post], S[n_base:n_base + n_post]
            u_of, b_of = U[n_base:n_base + n_post], B[n_base:n_base + n_post]
            # 1. traces (P follows the old Q)
            _traces(q_of, p_of, inputs, 1 << tb, q_shifts, p_shifts, gap_q, gap_p)
            # 2. refractory, from the neuron's spike of the previous tick
            _refractory(r_of, s_of, C[C_REFRACTORY_WEIGHT], r_shifts, gap_q)
            # 3. membrane: the exact dot product, shifted, then clamped
            # In float64, as the NumPy model does: every partial sum is an integer below
            # 2**53 (the constructor checks the bound), so the sum is exact in any order.
            for i in range(n_post):
                acc[i] = 0.0
            for j in range(n_pre):
                trace = p_of[j]
                if trace != 0:
                    row = w_base + j * n_post
                    _axpy(acc, float(trace), W_float[row:row + n_post])
            for i in range(n_post):
                value, flags = clamp_flag((np.int64(acc[i]) >> tb) + b_of[i] + r_of[i],
                                          m_low, m_high, flags, F_MEMBRANE)
                u_of[i] = value
                s_of[i] = value > 0      # 4. spike
            # 5. learning
            if learn[t]:
                flags = _learn(C, layer, n_layers, n_pre, n_post, n_out, tb, ub, error_shifts,
                               lr_shifts, W, W_float, B, G, g, P, S, U, target, q_base, n_base, w_base,
                               syn_base, g_base, tick0 + t, error_q, error_dense, columns, readout, blocks,
                               word0, word1, draws, flags)
            if layer == n_layers - 1 and t >= count_from:
                for i in range(n_post):
                    counts[i] += s_of[i]
                    sums[i] += u_of[i]
            for i in range(n_post):
                inputs[i] = s_of[i]
            q_base += n_pre
            n_base += n_post
            w_base += n_pre * n_post
            syn_base += (n_pre + 1) * n_post
            if layer < n_layers - 1:
                g_base += n_post * n_out
    return flags


@njit(cache=True, nogil=True)
def _learn(C, layer, n_layers, n_pre, n_post, n_out, tb, ub, error_shifts, lr_shifts, W, W_float,
           B, G, g, P, S, U, target, q_base, n_base, w_base, syn_base, g_base, tick, error_q,
           error_dense, columns,
           readout, blocks, word0, word1, draws, flags):
    """Step 5 of one layer (batch of one); returns the flags."""
    m_low, m_high, w_low, w_high = C[C_M_LOW], C[C_M_HIGH], C[C_W_LOW], C[C_W_HIGH]
    # a. readout error (below the top layer) and b. quantized, gated error
    top = layer == n_layers - 1
    if not top:
        # the readout matrix of the layer, (n_post, n_out); the sums have no saturation
        # before their end, so they add the rows of the spiking neurons
        G_layer = G[g_base:g_base + n_post * n_out].reshape((n_post, n_out))
        _readout_totals(G_layer, S[n_base:n_base + n_post],
                        g[layer * n_out:(layer + 1) * n_out], readout)
        for k in range(n_out):
            total, flags = clamp_flag(readout[k], m_low, m_high, flags, F_MEMBRANE)
            readout[k] = min(max(total - (target[k] << ub), -(1 << ub)), 1 << ub)
        _feedback_errors(G_layer, readout, error_dense)
    shift = error_shifts[layer]
    half = (1 << (shift - 1)) if shift else 0
    limit = C[C_ERROR_LIMIT]
    window = C[C_WINDOW]
    n_columns = 0
    for i in range(n_post):
        if top:
            error = ((1 if S[n_base + i] else 0) - target[i]) << ub
        else:
            error = error_dense[i]
        quantized = min(max((error + half) >> shift, -limit), limit)
        membrane = U[n_base + i]
        if not -window < membrane <= window:
            quantized = 0
        error_dense[i] = quantized
        if quantized != 0:
            error_q[n_columns] = quantized
            columns[n_columns] = i
            n_columns += 1
    if n_columns == 0:
        return flags
    # c. update the columns with a nonzero error, row by row (the bias row last)
    lr = lr_shifts[layer]
    learn_bias = C[C_LEARN_BIAS] != 0
    rounding = C[C_STOCHASTIC] != 0 and lr != 0
    rows = n_pre + 1 if learn_bias else n_pre
    # The 16-bit draws, four per Threefry block, in one call: with many columns every
    # block of the layer's rows (a contiguous range), with few one block per updated synapse.
    # ``draws`` then holds the field of each synapse the update reads.
    whole_rows = n_columns * 4 >= n_post
    first_block = syn_base >> 2
    if rounding:
        if whole_rows:
            n_blocks = ((syn_base + rows * n_post - 1) >> 2) - first_block + 1
            for b in range(n_blocks):
                blocks[b] = first_block + b
        else:
            n_blocks = rows * n_columns
            for j in range(rows):
                for c in range(n_columns):
                    blocks[j * n_columns + c] = (syn_base + j * n_post + columns[c]) >> 2
        threefry_words(C[C_SEED], C[C_STREAM], tick, blocks, n_blocks, C[C_ROUNDS],
                       word0, word1)
        if whole_rows:
            for b in range(n_blocks):
                low, high = np.int64(word0[b]), np.int64(word1[b])
                draws[4 * b] = low & 0xFFFF
                draws[4 * b + 1] = low >> 16
                draws[4 * b + 2] = high & 0xFFFF
                draws[4 * b + 3] = high >> 16
        else:
            for j in range(rows):
                for c in range(n_columns):
                    position = j * n_columns + c
                    field = (syn_base + j * n_post + columns[c]) & 3
                    word = np.int64(word0[position] if field < 2 else word1[position])
                    draws[position] = (word >> (16 * (field & 1))) & 0xFFFF
    drop = 16 - lr
    clamped = False
    skip_silent = C[C_WEIGHTS_IN_RANGE] != 0
    for j in range(rows):
        bias_row = j == n_pre
        trace = (1 << tb) if bias_row else P[q_base + j]
        # With a zero trace the change is (draw >> (16 - lr)) >> lr = 0 for every column,
        # and a weight within its range is written back unchanged: nothing to do.
        if trace == 0 and skip_silent:
            continue
        row = n_base if bias_row else w_base + j * n_post
        # views of the row (see run_sample: SIMD loops)
        store = B[row:row + n_post] if bias_row else W[row:row + n_post]
        store_float = W_float[row:row + n_post]
        if whole_rows:
            # Every column, without gathers (vectorized): a zero error leaves a weight as it
            # is, since (draw >> (16 - lr)) >> lr is 0 for a 16-bit draw.
            first = syn_base - 4 * first_block + j * n_post
            clamped |= _update_row(store, trace, error_dense, draws[first:first + n_post],
                                   rounding, drop, lr, w_low, w_high)
            if not bias_row:
                _copy_float(store_float, store)
            continue
        for c in range(n_columns):
            i = columns[c]
            x = -trace * error_q[c]
            if rounding:
                x += draws[j * n_columns + c] >> drop
            raw = store[i] + (x >> lr)
            value = min(max(raw, w_low), w_high)
            clamped |= value != raw
            store[i] = value
            if not bias_row:
                store_float[i] = value
    if clamped:
        flags |= F_WEIGHT
    return flags


# The decay of the specification (x + sum of gap >> shift), one shift at a time over a
# layer (integer sums: the order is free), so that each pass is a SIMD loop.
@njit(cache=True, nogil=True)
def _traces(q, p, inputs, one, q_shifts, p_shifts, gap_q, gap_p):
    """Step 1 on a layer's input traces (P follows the old Q)."""
    n = q.size
    for j in range(n):
        gap_q[j] = (one if inputs[j] else 0) - q[j]
        gap_p[j] = q[j] - p[j]
    for k in q_shifts:
        for j in range(n):
            q[j] += gap_q[j] >> k
    for k in p_shifts:
        for j in range(n):
            p[j] += gap_p[j] >> k


@njit(cache=True, nogil=True)
def _refractory(r, spikes, weight, r_shifts, gap):
    """Step 2 on a layer's refractory states, from its spikes of the previous tick."""
    n = r.size
    for i in range(n):
        gap[i] = (-weight if spikes[i] else 0) - r[i]
    for k in r_shifts:
        for i in range(n):
            r[i] += gap[i] >> k


@njit(cache=True, nogil=True)
def _readout_totals(G_layer, spikes, g, totals):
    """``totals[k] = g[k] + sum of G_layer[i, k] over the spiking neurons i`` (unclamped)."""
    n_out = totals.size
    for k in range(n_out):
        totals[k] = g[k]
    for i in range(spikes.size):
        if spikes[i]:
            for k in range(n_out):
                totals[k] += G_layer[i, k]


@njit(cache=True, nogil=True)
def _feedback_errors(G_layer, readout, errors):
    """``errors[i] = sum over k of readout[k] * G_layer[i, k]``."""
    for i in range(G_layer.shape[0]):
        error = 0
        for k in range(readout.size):
            error += readout[k] * G_layer[i, k]
        errors[i] = error


# The row loops are functions of their own: inside the large kernels LLVM keeps them
# scalar; alone, each compiles to one SIMD loop.
@njit(cache=True, nogil=True)
def _axpy(acc, trace, weights):
    """``acc += trace * weights`` (exact: integers below 2**53)."""
    for i in range(weights.size):
        acc[i] += trace * weights[i]


@njit(cache=True, nogil=True)
def _update_row(store, trace, error, draws, rounding, drop, lr, w_low, w_high):
    """Step 5c on a whole row (``store``, a view): return whether a weight saturated."""
    clamped = False
    for i in range(store.size):
        x = -trace * error[i]
        if rounding:
            x += draws[i] >> drop
        raw = store[i] + (x >> lr)
        value = min(max(raw, w_low), w_high)
        clamped |= value != raw
        store[i] = value
    return clamped


@njit(cache=True, nogil=True)
def _copy_float(target, source):
    for i in range(source.size):
        target[i] = source[i]


@njit(cache=True, nogil=True)
def run_batch(C, layers, q_shifts, p_shifts, r_shifts, error_shifts, lr_shifts, W, W_float,
              B, G, g, Q, P, R, S, U, rasters, targets, learn, tick0, count_from, counts, sums,
              first, stop):
    """:func:`run_sample` for samples ``first .. stop - 1`` of a batch (rows of the state
    arrays); returns their flags. Releases the GIL: threads run disjoint ranges at once."""
    flags = 0
    for b in range(first, stop):
        flags |= run_sample(C, layers, q_shifts, p_shifts, r_shifts, error_shifts, lr_shifts,
                            W, W_float, B, G, g, Q[b], P[b], R[b], S[b], U[b], rasters[b],
                            targets, learn, tick0, count_from, counts[b], sums[b])
    return flags
