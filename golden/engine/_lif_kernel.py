"""The compiled tick of the inference core and the eRBP core (one kernel for both).

It computes, in the same order, exactly what :mod:`plasticore.golden.lif` (``erbp = 0``) and
:mod:`plasticore.golden.erbp` (``erbp = 1``) specify; the docstrings of those modules are
the specification and are not repeated here. The state lives in flat int64 arrays (every
layer back to back, offsets alongside) so that one compiled function serves every depth.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._threefry import clamp_flag, threefry_row, threefry_words

# Indices of the constant vector (see ``lif_constants`` in lif.py).
(C_ERBP, C_GAIN, C_LEAK, C_THRESHOLD, C_RESET_ZERO, C_REFRACTORY, C_M_LOW, C_M_HIGH,
 C_W_LOW, C_W_HIGH, C_GATE_LOW, C_GATE_HIGH, C_SEED, C_ROUNDS, C_ERROR_THRESHOLD,
 C_ERROR_WEIGHT, C_DENDRITE_SHIFT, C_COUNTERS_SATURATE, C_ROW_DRAWS, C_SIZE) = range(20)
# C_ROW_DRAWS: when a delivered row's draws are computed for the whole row (see run_ticks).
ROW_DRAWS_AUTO, ROW_DRAWS_ALWAYS, ROW_DRAWS_NEVER = 0, 1, 2
# Indices of the register vector.
(R_TICK, R_SAMPLE_TICK, R_DROPPED, R_FLAGS, R_LEARNING, R_BURN_IN, R_SHIFT, R_SIZE) = range(8)

COUNTER_MAX = (1 << 32) - 1
# Sticky flags (plasticore.layout).
F_ACCUMULATOR = 1 << 0
F_MEMBRANE = 1 << 1
F_WEIGHT = 1 << 2
F_DENDRITE = 1 << 3
F_ERROR = 1 << 4


@njit(cache=True, nogil=True)
def run_ticks(C, layers, n_off, f_off, W, V, REF, U, E, F, regs, events, ev_off, count_from,
              counts, record, out_spikes, out_off, error_spikes):
    """Run ``len(ev_off) - 1`` ticks; tick ``t``'s events are ``events[ev_off[t]:ev_off[t+1]]``.

    Counts the prediction layer's spikes from tick ``count_from`` on into ``counts``; with
    ``record`` writes every tick's spikes (layer by layer, ascending) to ``out_spikes``,
    where tick ``t``'s layer ``l`` ends at ``out_off[t * L + l + 1]``.
    """
    n_layers = layers.size - 1
    n_in = layers[0]
    n_out = layers[n_layers]
    erbp = C[C_ERBP] != 0
    gain, leak_shift, threshold = C[C_GAIN], C[C_LEAK], C[C_THRESHOLD]
    reset_zero, refractory = C[C_RESET_ZERO] != 0, C[C_REFRACTORY]
    m_low, m_high, w_low, w_high = C[C_M_LOW], C[C_M_HIGH], C[C_W_LOW], C[C_W_HIGH]
    n_ticks = ev_off.size - 1
    widest = max(1, layers.max())
    longest = 0
    for t in range(n_ticks):
        longest = max(longest, ev_off[t + 1] - ev_off[t])
    buffer = max(widest, longest)
    presynaptic = np.empty(buffer, dtype=np.int64)
    spiked = np.empty(buffer, dtype=np.int64)
    acc = np.empty(widest, dtype=np.int64)
    total = n_off[n_layers]
    active = np.empty(total, dtype=np.int64)        # per layer: neurons that change a weight
    active_step = np.empty(total, dtype=np.int64)
    active_frac = np.empty(total, dtype=np.int64)
    n_active = np.zeros(n_layers, dtype=np.int64)
    # The same signals per neuron (zero step and fraction where the weights keep still),
    # for rows where most neurons learn: one SIMD pass then draws and updates the whole row.
    row_step = np.zeros(total, dtype=np.int64)
    row_frac = np.zeros(total, dtype=np.int64)
    row_learns = np.zeros(total, dtype=np.bool_)
    counters = np.empty(widest, dtype=np.int64)
    word0 = np.empty(widest, dtype=np.uint32)
    word1 = np.empty(widest, dtype=np.uint32)
    label_count = np.zeros(n_out, dtype=np.int64)
    predicted = np.zeros(n_out, dtype=np.int64)
    position = 0
    for t in range(n_ticks):
        # 1. input events
        n_pre = 0
        dropped = 0
        label_count[:] = 0
        for e in range(ev_off[t], ev_off[t + 1]):
            address = events[e]
            if 0 <= address < n_in:
                presynaptic[n_pre] = address
                n_pre += 1
            elif erbp and n_in <= address < n_in + n_out:
                label_count[address - n_in] += 1
            else:
                dropped += 1
        if dropped:
            regs[R_DROPPED] = min(COUNTER_MAX, regs[R_DROPPED] + dropped)
        # 2. learning signals, from the state at the start of the tick
        learning = erbp and regs[R_LEARNING] != 0 and regs[R_SAMPLE_TICK] >= regs[R_BURN_IN]
        shift = regs[R_SHIFT]
        mask = (1 << shift) - 1
        if learning:
            gate_low, gate_high = C[C_GATE_LOW], C[C_GATE_HIGH]
            for layer in range(n_layers):
                base = n_off[layer]
                count = 0
                for i in range(layers[layer + 1]):
                    v = V[base + i]
                    row_step[base + i] = 0
                    row_frac[base + i] = 0
                    row_learns[base + i] = False
                    if gate_low < v < gate_high:
                        u = U[base + i]
                        step = u >> shift
                        frac = u & mask
                        if step != 0 or frac != 0:
                            active[base + count] = i
                            active_step[base + count] = step
                            active_frac[base + count] = frac
                            row_step[base + i] = step
                            row_frac[base + i] = frac
                            row_learns[base + i] = True
                            count += 1
                n_active[layer] = count
        flags = regs[R_FLAGS]
        # 3. layer by layer: delivery and learning, somatic update, spikes
        for layer in range(n_layers):
            n_post = layers[layer + 1]
            base = n_off[layer]
            w_base = 0
            for below in range(layer):
                w_base += layers[below] * layers[below + 1]
            for i in range(n_post):
                acc[i] = 0
            clamped = 0
            count = n_active[layer] if learning else 0
            # Draw the whole row when at least half its neurons learn: computing a draw
            # nobody uses changes nothing (a draw depends only on tick and synapse).
            # (C_ROW_DRAWS forces either way, for the tests of both paths.)
            row_draws = C[C_ROW_DRAWS]
            dense = row_draws == ROW_DRAWS_ALWAYS or (row_draws == ROW_DRAWS_AUTO
                                                      and 2 * count >= n_post)
            # Row and layer views: indexed from 0 by a range variable, the loops below
            # compile to SIMD code (an index like ``row + i`` could be negative, and
            # Numba's wraparound check for it keeps a loop scalar).
            step_of = row_step[base:base + n_post]
            frac_of = row_frac[base:base + n_post]
            learns_of = row_learns[base:base + n_post]
            for p in range(n_pre):
                row = w_base + presynaptic[p] * n_post
                weights = W[row:row + n_post]
                if count and dense:
                    threefry_row(C[C_SEED], 0, regs[R_TICK], row, n_post, C[C_ROUNDS],
                                 word0, word1)
                    accumulator_clamped, weight_clamped = _deliver_and_learn(
                        weights, acc, step_of, frac_of, learns_of, word0, mask, gain,
                        m_low, m_high, w_low, w_high)
                    clamped |= accumulator_clamped
                    if weight_clamped:
                        flags |= F_WEIGHT
                    continue
                clamped |= _deliver(weights, acc, gain, m_low, m_high)
                if count:
                    for k in range(count):
                        counters[k] = row + active[base + k]
                    threefry_words(C[C_SEED], 0, regs[R_TICK], counters, count, C[C_ROUNDS],
                                   word0, word1)
                    for k in range(count):
                        i = active[base + k]
                        weights[i], flags = clamp_flag(
                            weights[i] + active_step[base + k]
                            + ((np.int64(word0[k]) & mask) < active_frac[base + k]),
                            w_low, w_high, flags, F_WEIGHT)
            if clamped:
                flags |= F_ACCUMULATOR
            n_spikes = 0
            membrane = V[base:base + n_post]
            hold = REF[base:base + n_post]
            for i in range(n_post):
                if hold[i] > 0:
                    hold[i] -= 1
                    continue
                v = membrane[i]
                raw = v - (v >> leak_shift) + acc[i] if leak_shift else v + acc[i]
                raw, flags = clamp_flag(raw, m_low, m_high, flags, F_MEMBRANE)
                if raw >= threshold:
                    spiked[n_spikes] = i
                    n_spikes += 1
                    raw = 0 if reset_zero else raw - threshold
                    hold[i] = refractory
                membrane[i] = raw
            if record:
                for k in range(n_spikes):
                    out_spikes[position + k] = spiked[k]
                position += n_spikes
                out_off[t * n_layers + layer + 1] = position
            presynaptic, spiked = spiked, presynaptic
            n_pre = n_spikes
        # the prediction layer's spikes are in presynaptic[:n_pre]
        if t >= count_from:
            for k in range(n_pre):
                counts[presynaptic[k]] += 1
        if erbp:
            flags = _error_and_dendrites(C, layers, n_off, f_off, U, E, F, label_count,
                                         predicted, presynaptic, n_pre, error_spikes, acc, flags)
        regs[R_FLAGS] = flags
        if C[C_COUNTERS_SATURATE]:
            regs[R_TICK] = min(COUNTER_MAX, regs[R_TICK] + 1)
            regs[R_SAMPLE_TICK] = min(COUNTER_MAX, regs[R_SAMPLE_TICK] + 1)
        else:
            regs[R_TICK] += 1


# The two row loops are functions of their own: inside the large run_ticks, LLVM keeps
# them scalar; alone, each compiles to one SIMD loop.
@njit(cache=True, nogil=True)
def _deliver(weights, acc, gain, m_low, m_high):
    """Add a row's weights (shifted by ``gain``) to the accumulators, saturating in arrival
    order; return whether one saturated."""
    clamped = False
    for i in range(weights.size):
        raw = acc[i] + (weights[i] << gain)
        value = min(max(raw, m_low), m_high)
        clamped |= raw != value
        acc[i] = value
    return clamped


@njit(cache=True, nogil=True)
def _deliver_and_learn(weights, acc, step, frac, learns, word0, mask, gain, m_low, m_high,
                       w_low, w_high):
    """:func:`_deliver`, then each learning synapse's update with its rounding draw
    (``word0``, the row's draws); return whether an accumulator and whether a weight
    saturated."""
    clamped = False
    weight_clamped = False
    for i in range(weights.size):
        w = weights[i]
        raw = acc[i] + (w << gain)
        value = min(max(raw, m_low), m_high)
        clamped |= raw != value
        acc[i] = value
        # delivery reads the weight before this event's update
        raw = w + step[i] + ((np.int64(word0[i]) & mask) < frac[i])
        value = min(max(raw, w_low), w_high)
        weight_clamped |= learns[i] & (raw != value)
        weights[i] = value if learns[i] else w
    return clamped, weight_clamped


@njit(cache=True, nogil=True)
def _error_and_dendrites(C, layers, n_off, f_off, U, E, F, label_count, predicted, spikes,
                         n_spikes, error_spikes, fb, flags):
    """Steps 4 and 5 of the eRBP tick; returns the flags."""
    n_layers = layers.size - 1
    n_out = layers[n_layers]
    m_low, m_high = C[C_M_LOW], C[C_M_HIGH]
    threshold, weight = C[C_ERROR_THRESHOLD], C[C_ERROR_WEIGHT]
    predicted[:] = 0
    for k in range(n_spikes):
        predicted[spikes[k]] = 1
    n_error_spikes = 0
    for sign in range(2):
        w = weight if sign == 0 else -weight
        for k in range(n_out):
            acc = 0
            for _ in range(label_count[k]):
                raw = acc + w
                acc = min(max(raw, m_low), m_high)
                if acc != raw:
                    flags |= F_ERROR
            if predicted[k]:
                raw = acc - w
                acc = min(max(raw, m_low), m_high)
                if acc != raw:
                    flags |= F_ERROR
            raw = E[sign, k] + acc
            state = min(max(raw, m_low), m_high)
            if state != raw:
                flags |= F_ERROR
            state = max(state, 0)
            spike = state >= threshold
            if spike:
                state -= threshold
                n_error_spikes += 1
            E[sign, k] = state
            error_spikes[sign, k] = spike
    shift = C[C_DENDRITE_SHIFT]
    for layer in range(n_layers):
        n_post = layers[layer + 1]
        base = n_off[layer]
        f_base = f_off[layer]
        for i in range(n_post):
            fb[i] = 0
        if n_error_spikes:
            clamped = 0
            for sign in range(2):
                for k in range(n_out):
                    if error_spikes[sign, k]:
                        row = f_base + k * n_post
                        feedback = F[row:row + n_post]     # a view: SIMD (see run_ticks)
                        for i in range(n_post):
                            raw = fb[i] + feedback[i] if sign == 0 else fb[i] - feedback[i]
                            value = min(max(raw, m_low), m_high)
                            clamped |= raw != value
                            fb[i] = value
            if clamped:
                flags |= F_DENDRITE
        dendrite = U[base:base + n_post]
        for i in range(n_post):
            u = dendrite[i]
            leak = u >> shift
            if u > 0 and leak == 0:
                leak = 1
            dendrite[i], flags = clamp_flag(u - leak + fb[i], m_low, m_high, flags, F_DENDRITE)
    return flags


@njit(cache=True, nogil=True)
def replay_error_and_dendrites(C, layers, n_off, f_off, U, E, F, spikes, spike_offsets,
                               n_ticks, error_spikes):
    """Steps 4 and 5 of ``n_ticks`` ticks without labels, from the prediction layer's spikes
    recorded by :func:`run_ticks` (``spikes``, ``spike_offsets``); return the flags raised.

    With learning off these steps do not act on the membranes: a recorded run gives the
    error and dendrite states of any start, without running the network again.
    """
    n_layers = layers.size - 1
    n_out = layers[n_layers]
    label_count = np.zeros(n_out, dtype=np.int64)
    predicted = np.zeros(n_out, dtype=np.int64)
    fired = np.empty(n_out, dtype=np.int64)
    fb = np.empty(max(1, layers.max()), dtype=np.int64)
    flags = 0
    for t in range(n_ticks):
        start = spike_offsets[t * n_layers + n_layers - 1]
        count = spike_offsets[t * n_layers + n_layers] - start
        for k in range(count):
            fired[k] = spikes[start + k]
        flags = _error_and_dendrites(C, layers, n_off, f_off, U, E, F, label_count,
                                     predicted, fired, count, error_spikes, fb, flags)
    return flags
