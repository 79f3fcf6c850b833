"""The event-camera adapter on recordings generated here, against a naive per-event loop."""

import numpy as np
import pytest

from plasticore.events import EventAdapter, RecordingError, check_recording, raster_to_addresses

TONIC_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


def recording(n, width, height, duration, seed=0, dtype=TONIC_DTYPE):
    rng = np.random.default_rng(seed)
    events = np.zeros(n, dtype=dtype)
    events["x"] = rng.integers(0, width, n)
    events["y"] = rng.integers(0, height, n)
    events["t"] = np.sort(rng.integers(0, duration, n))
    events["p"] = rng.integers(0, 2, n)
    return events


def naive_counts(events, width, height, window, fx, fy, polarity, n_ticks, t_start):
    """One event at a time, straight from the definition in the module docstring."""
    w, h = -(-width // fx), -(-height // fy)
    channels = 2 if polarity == "split" else 1
    counts = np.zeros((n_ticks, channels * w * h), dtype=np.int64)
    for event in events:
        tick = int((int(event["t"]) - t_start) // window)
        on = int(event["p"]) > 0
        if tick < 0 or tick >= n_ticks:
            continue
        if (polarity == "on" and not on) or (polarity == "off" and on):
            continue
        channel = int(on) if polarity == "split" else 0
        counts[tick, (channel * h + int(event["y"]) // fy) * w + int(event["x"]) // fx] += 1
    return counts


@pytest.mark.parametrize("polarity", ["split", "merge", "on", "off"])
@pytest.mark.parametrize("sensor, factors", [((34, 34, 2), (1, 1)), ((34, 34, 2), (4, 4)),
                                              ((128, 128, 2), (8, 8)), ((35, 20), (3, 2))])
def test_raster_matches_naive_loop(polarity, sensor, factors):
    width, height = sensor[:2]
    events = recording(3000, width, height, 30_000, seed=width + factors[0])
    adapter = EventAdapter(sensor, time_window=1000, downsample=factors, polarity=polarity,
                           n_ticks=25, t_start=0)
    expected = naive_counts(events, width, height, 1000, *factors, polarity, 25, 0)
    counts = adapter.raster(events, binary=False)
    assert counts.shape == expected.shape
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(adapter.raster(events), expected > 0)


def test_hand_computed_recording():
    # Sensor 4x2, downsample 2: grid 2x1, split polarity: addresses 0, 1 (OFF), 2, 3 (ON).
    events = np.array([(0, 0, 5, 1), (3, 1, 1000, 0), (2, 0, 1999, 1), (1, 1, 2500, 1)],
                      dtype=[("x", int), ("y", int), ("t", int), ("p", int)])
    adapter = EventAdapter((4, 2, 2), time_window=1000, downsample=2)
    assert adapter.n_inputs == 4 and adapter.grid == (2, 1)
    # t_start defaults to the first event (5): ticks 0, 0, 1, 2.
    expected = np.zeros((3, 4), dtype=bool)
    expected[0, 2] = True        # (0, 0) ON -> x' 0, channel 1 -> 2
    expected[0, 1] = True        # (3, 1) OFF -> x' 1, y' 0, channel 0 -> 1
    expected[1, 3] = True        # (2, 0) ON -> x' 1 -> 3
    expected[2, 2] = True        # (1, 1) ON -> x' 0 -> 2
    np.testing.assert_array_equal(adapter.raster(events), expected)
    assert [list(a) for a in adapter.event_ticks(events)] == [[1, 2], [3], [2]]


def test_minus_one_polarity_and_dropped_events():
    events = np.array([(0.0, 0, 0, -1), (500.0, 1, 0, 1), (5000.0, 1, 0, 1)],
                      dtype=[("t", float), ("x", int), ("y", int), ("p", int)])
    adapter = EventAdapter((2, 1), time_window=1000, n_ticks=2, t_start=0)
    ticks, address, dropped = adapter.addresses(events)
    assert list(ticks) == [0, 0] and list(address) == [0, 3] and dropped == 1


def test_repeated_events_counted_and_addresses_repeat():
    events = np.array([(0, 0, 10, 1)] * 3, dtype=[("x", int), ("y", int), ("t", int), ("p", int)])
    adapter = EventAdapter((1, 1, 2), polarity="merge")
    assert adapter.raster(events, binary=False).tolist() == [[3]]
    assert [list(a) for a in adapter.event_ticks(events, binary=False)] == [[0, 0, 0]]
    assert [list(a) for a in raster_to_addresses(np.array([[2, 0, 1]]))] == [[0, 0, 2]]


def test_empty_recording():
    events = np.zeros(0, dtype=TONIC_DTYPE)
    assert EventAdapter((34, 34, 2)).raster(events).shape == (0, 2 * 34 * 34)
    assert EventAdapter((34, 34, 2), n_ticks=5).raster(events).shape == (5, 2 * 34 * 34)


@pytest.mark.parametrize("mutate, field, fragment", [
    (lambda e: e["t"].__setitem__(0, -1), "t", "negative"),
    (lambda e: e["x"].__setitem__(1, 34), "x", "width 34"),
    (lambda e: e["y"].__setitem__(2, 40), "y", "height 34"),
    (lambda e: e["x"].__setitem__(0, -2), "x", "negative"),
    (lambda e: e["p"].__setitem__(3, 2), "p", "0 or -1"),
])
def test_malformed_recordings_named(mutate, field, fragment):
    events = recording(10, 34, 34, 1000)
    mutate(events)
    with pytest.raises(RecordingError, match=fragment) as info:
        check_recording(events, (34, 34, 2))
    assert info.value.field == field


def test_missing_field_and_not_structured():
    events = np.zeros(3, dtype=[("x", int), ("y", int), ("t", int)])
    with pytest.raises(RecordingError, match="missing field") as info:
        EventAdapter((34, 34, 2)).raster(events)
    assert info.value.field == "p"
    with pytest.raises(RecordingError, match="structured array"):
        check_recording(np.zeros((3, 4)), (34, 34))
    bad = np.zeros(2, dtype=[("x", int), ("y", int), ("t", float), ("p", int)])
    bad["t"][1] = np.nan
    with pytest.raises(RecordingError, match="finite"):
        check_recording(bad, (34, 34))


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(sensor_size=(0, 34)), "sensor_size.width"),
    (dict(sensor_size=(34,)), "sensor_size"),
    (dict(sensor_size=(34, 34), time_window=0), "time_window"),
    (dict(sensor_size=(34, 34), downsample=0), "downsample"),
    (dict(sensor_size=(34, 34), downsample=(2, 2, 2)), "downsample"),
    (dict(sensor_size=(34, 34), downsample=35), "downsample"),
    (dict(sensor_size=(34, 34), polarity="both"), "polarity"),
    (dict(sensor_size=(34, 34), n_ticks=-1), "n_ticks"),
])
def test_bad_adapter_settings(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        EventAdapter(**kwargs)


def test_recording_drives_a_decolle_core():
    """An N-MNIST-shaped recording, binned at 1 ms and pooled 2x2, feeds the integer model."""
    from plasticore.config import CoreConfig
    from plasticore.golden.decolle import GoldenDecolle

    adapter = EventAdapter((34, 34, 2), time_window=1000, downsample=2, n_ticks=30, t_start=0)
    assert adapter.n_inputs == 2 * 17 * 17
    events = recording(4000, 34, 34, 30_000, seed=11)
    raster = adapter.raster(events)
    config = CoreConfig.from_dict(dict(
        layers=[adapter.n_inputs, 20, 10], weight_bits=12, membrane_bits=16, rule="decolle",
        decolle=dict(ticks_per_sample=30, burn_in=5, trace_bits=12, lr_shifts=[12, 12],
                     init_scale=[8.0, 3.0])))
    model = GoldenDecolle(config)
    before = model.weights[0].copy()
    counts, _ = model.run_sample(raster, label=3, learn=True)
    assert counts.shape == (1, 10)
    assert (model.weights[0] != before).any()
