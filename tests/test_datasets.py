"""The data-set layer: IDX files, event recordings, simulated saccades, the validation split,
and ``plasticore train --dataset`` on each (files written here in the real formats)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from plasticore.cli import main as cli_main
from plasticore.datasets import DatasetError, load_dataset, stratified_holdout
from plasticore.datasets.idx import read_idx, write_idx
from plasticore.datasets.recordings import read_nmnist_bin, read_recording, write_nmnist_bin
from plasticore.datasets.saccades import saccade_path, simulate_saccades
from plasticore.datasets.settings import DataSettings

# ---------------------------------------------------------------------------------------
# IDX


def mnist_like(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def write_idx_dir(directory, n_train=12, n_test=6, *, compress=False, test_prefix="t10k", sep="-"):
    directory.mkdir(parents=True, exist_ok=True)
    gz = ".gz" if compress else ""
    for prefix, n, seed in (("train", n_train, 0), (test_prefix, n_test, 1)):
        images, labels = mnist_like(n, seed)
        write_idx(directory / f"{prefix}-images{sep}idx3-ubyte{gz}", images, compress=compress)
        write_idx(directory / f"{prefix}-labels{sep}idx1-ubyte{gz}", labels, compress=compress)
    return directory


def test_idx_header_is_the_published_layout(tmp_path):
    """Bytes written by hand as MNIST's format describes them, not by write_idx."""
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") \
        + (4).to_bytes(4, "big") + images.tobytes()
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    for name in ("a", "a.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), images)
    labels = np.array([-3, 1000], dtype=">i4")
    (tmp_path / "b").write_bytes(bytes([0, 0, 0x0C, 1]) + (2).to_bytes(4, "big") + labels.tobytes())
    assert read_idx(tmp_path / "b").tolist() == [-3, 1000]
    write_idx(tmp_path / "c", images)
    assert (tmp_path / "c").read_bytes() == raw


@pytest.mark.parametrize("compress,test_prefix,sep", [(False, "t10k", "-"), (True, "test", "."),
                                                      (True, "t10k", "-")])
def test_idx_directory_loads_as_distributed(tmp_path, compress, test_prefix, sep):
    write_idx_dir(tmp_path, compress=compress, test_prefix=test_prefix, sep=sep)
    split = load_dataset(f"idx:{tmp_path}")
    images, labels = mnist_like(12, 0)
    assert split.n_inputs == 784 and len(split.train) == 12 and len(split.test) == 6
    np.testing.assert_allclose(split.train.intensities(), images.reshape(12, -1) / 255)
    np.testing.assert_array_equal(split.train.labels, labels)


def test_idx_errors_are_one_line_and_name_the_problem(tmp_path):
    images, labels = mnist_like(4)
    good = tmp_path / "good"
    write_idx(good, images)
    raw = good.read_bytes()
    cases = {
        "magic": b"\x08\x03\x00\x00" + raw[4:],
        "truncated": raw[:-5],
        "truncated gzip": gzip.compress(raw)[:-9],
        "longer": raw + b"\x00",
        "header": raw[:9],
    }
    expected = {"magic": "magic = 0x08030000", "truncated": "is truncated",
                "truncated gzip": "gzip", "longer": "longer than its header",
                "header": "is truncated"}
    for name, data in cases.items():
        path = tmp_path / name.replace(" ", "_")
        path.write_bytes(data)
        with pytest.raises(DatasetError) as error:
            read_idx(path)
        assert expected[name] in str(error.value) and "\n" not in str(error.value)
        assert str(path) in str(error.value)


def test_idx_mismatched_counts_and_missing_files(tmp_path):
    write_idx_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(DatasetError, match=r"count = 5: must match the 6 images"):
        load_dataset(f"idx:{tmp_path}")
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="test-labels = missing"):
        load_dataset(f"idx:{tmp_path}")


# ---------------------------------------------------------------------------------------
# Event recordings


def test_nmnist_bin_is_40_bit_events(tmp_path):
    """x, y, then polarity in bit 23 and a 23-bit time stamp, big-endian (written by hand)."""
    path = tmp_path / "00001.bin"
    path.write_bytes(bytes([5, 7, 0x80 | 0x12, 0x34, 0x56, 33, 0, 0x7F, 0xFF, 0xFF]))
    events = read_nmnist_bin(path)
    assert events[["x", "y", "p", "t"]].tolist() == [(5, 7, 1, 0x123456), (33, 0, 0, (1 << 23) - 1)]
    write_nmnist_bin(tmp_path / "again.bin", events)
    assert (tmp_path / "again.bin").read_bytes() == path.read_bytes()
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match="truncated: N-MNIST events are 5 bytes"):
        read_nmnist_bin(path)


def tonic_events(rng, n, width, height, duration):
    """A recording as tonic gives it: fields x, y, t, p (this dtype order, p boolean)."""
    dtype = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    events = np.empty(n, dtype=dtype)
    events["x"] = rng.integers(0, width, n)
    events["y"] = rng.integers(0, height, n)
    events["t"] = np.sort(rng.integers(0, duration, n))
    events["p"] = rng.random(n) < 0.5
    return events


def write_recording_dir(root, fmt, *, n_per_class=3, classes=2, seed=0):
    """A recording set in N-MNIST's layout: each class lights its own half of a 6x4 sensor."""
    rng = np.random.default_rng(seed)
    for part, folder in (("train", "Train"), ("test", "Test")):
        for label in range(classes):
            directory = root / folder / str(label)
            directory.mkdir(parents=True)
            for k in range(n_per_class):
                events = tonic_events(rng, 60, 3, 4, 20_000)
                events["x"] += 3 * label
                events = events[np.argsort(events["t"])]
                if fmt == "bin":
                    write_nmnist_bin(directory / f"{k:05d}.bin", events)
                elif fmt == "npy":
                    np.save(directory / f"{k:05d}.npy", events)
                else:
                    np.savez(directory / f"{k:05d}.npz", events=events)
    return root


@pytest.mark.parametrize("fmt", ["bin", "npy", "npz"])
def test_recordings_bin_into_ticks(tmp_path, fmt):
    write_recording_dir(tmp_path, fmt)
    settings = DataSettings(time_window=1000, polarity="split", downsample=(3, 2))
    split = load_dataset(f"events:{tmp_path}", settings)
    # 6x4 sensor (inferred), pooled 3x2 -> 2x2 pixels, two polarity channels.
    assert split.n_inputs == 8 and len(split.train) == 6 and len(split.test) == 6
    assert split.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    first = sorted((tmp_path / "Train" / "0").iterdir())[0]
    events = read_recording(first)
    t0 = events["t"].min()
    raster = split.train.raster(0, 25)
    expected = np.zeros((25, 8), bool)
    for e in events:   # address = (channel * H' + y // 2) * W' + x // 3, tick = (t - t0) // 1000
        expected[(e["t"] - t0) // 1000, (int(e["p"]) * 2 + e["y"] // 2) * 2 + e["x"] // 3] = True
    np.testing.assert_array_equal(raster, expected)
    # Input spikes binned after a 10-tick window are counted, not silently lost.
    late = sum(int(split.train.raster(i, 25)[10:].sum()) for i in range(len(split.train)))
    assert late > 0 and split.train.spikes_beyond(10) == late
    # Class 1 lives in the right-hand pooled column only.
    assert not split.train.raster(3, 25)[:, [0, 2, 4, 6]].any()


def test_bad_recordings_are_refused_with_the_file_named(tmp_path):
    write_recording_dir(tmp_path, "npy")
    bad = tmp_path / "Test" / "1" / "00000.npy"
    events = np.load(bad)
    events["y"][3] = 9
    np.save(bad, events)
    with pytest.raises(DatasetError) as error:
        load_dataset(f"events:{tmp_path}", DataSettings(sensor_size=(6, 4)))
    assert str(bad) in str(error.value) and "y = 9: must be below the sensor height 4" in str(error.value)
    np.save(bad, np.zeros(3))
    with pytest.raises(DatasetError, match="structured array"):
        load_dataset(f"events:{tmp_path}")


# ---------------------------------------------------------------------------------------
# Simulated saccades


def test_saccade_path_is_three_saccades_back_to_the_start():
    path = saccade_path(2.0, 4)
    assert path.shape == (13, 2)
    np.testing.assert_allclose(path[[0, 4, 8, 12]], [(0, 0), (2, 1), (0, 2), (0, 0)])


def test_saccades_are_seeded_signed_and_only_where_there_are_edges():
    settings = DataSettings(saccade_amplitude=2.0, saccade_steps=10, saccade_us=30_000)
    image = np.zeros((6, 6))
    image[2:4, 2:4] = 1.0
    images = np.stack([image, np.zeros((6, 6))])

    def run(seed):
        return simulate_saccades(images, settings, [np.random.default_rng([seed, i]) for i in range(2)])

    square, blank = run(0)
    assert blank.size == 0, "a uniform image has no edges to move"
    assert square.size > 0 and set(square["p"].tolist()) == {0, 1}
    assert (np.diff(square["t"]) >= 0).all() and square["t"].max() < 3 * 30_000
    assert square["x"].max() < 8 and square["y"].max() < 8   # 6 + ceil(2) sensor
    again, _ = run(0)
    np.testing.assert_array_equal(square, again)
    other, _ = run(1)
    assert not np.array_equal(square["t"], other["t"])
    # Moving right then back: the leading edge brightens (ON) before it darkens (OFF).
    first = square[square["t"] < 30_000]
    assert first["p"].sum() > 0 and (first["p"] == 0).sum() > 0


def test_saccades_of_digits_give_an_event_split():
    from plasticore.datasets import as_split, load_digits_split
    from plasticore.datasets.saccades import saccade_split
    digits = load_digits_split()
    small = as_split(digits).limited(20, 10)
    settings = DataSettings(time_window=3000)
    split = saccade_split(small, settings, "digits")
    assert split.n_inputs == 2 * 10 * 10 and len(split.train) == 20 and len(split.test) == 10
    # Three 100 ms saccades in 3 ms ticks: every event falls in the first 100 ticks.
    assert split.train.spikes_beyond(100) == 0 and split.train.length(0) <= 100
    assert sum(len(k) for k in split.train.keys) > 20 * 100


# ---------------------------------------------------------------------------------------
# Validation split


def test_validation_split_is_stratified_seeded_and_disjoint():
    labels = np.repeat(np.arange(4), [40, 20, 10, 30])
    keep, held = stratified_holdout(labels, 0.2, seed=3)
    assert np.intersect1d(keep, held).size == 0 and len(keep) + len(held) == 100
    assert np.bincount(labels[held]).tolist() == [8, 4, 2, 6]
    again = stratified_holdout(labels, 0.2, seed=3)
    np.testing.assert_array_equal(held, again[1])
    assert not np.array_equal(held, stratified_holdout(labels, 0.2, seed=4)[1])


def test_data_table_is_validated_and_optional(tmp_path):
    from plasticore.config import ConfigError, CoreConfig
    old = CoreConfig.from_toml("examples/erbp-digits.toml")
    assert old.data is None
    config = CoreConfig.from_toml("examples/decolle-saccades.toml")
    assert config.data.time_window == 3000 and config.data.downsample == (1, 1)
    assert CoreConfig.from_dict(config.to_dict()) == config
    data = config.to_dict()
    data["data"]["polarity"] = "both"
    with pytest.raises(ConfigError, match="data.polarity = 'both': must be one of split"):
        CoreConfig.from_dict(data)
    data["data"] = {"bin_width": 3}
    with pytest.raises(ConfigError, match="data.bin_width = 3: is not a data setting"):
        CoreConfig.from_dict(data)


# ---------------------------------------------------------------------------------------
# plasticore train --dataset


DECOLLE_TINY = """
name = "decolle_tiny"
layers = [{inputs}, 12, {classes}]
weight_bits = 12
membrane_bits = 16
seed = 1
rule = "decolle"

[decolle]
epochs = 1
ticks_per_sample = 25
burn_in = 5
init_scale = [8.0, 3.0]

[data]
validation_fraction = 0.2
downsample = [3, 2]
"""


@pytest.mark.parametrize("fmt", ["bin", "npy"])
def test_train_on_recordings(tmp_path, fmt, capsys):
    write_recording_dir(tmp_path / "rec", fmt, n_per_class=5)
    config = tmp_path / "tiny.toml"
    config.write_text(DECOLLE_TINY.format(inputs=8, classes=2))
    out = tmp_path / "out"
    code = cli_main(["train", str(config), "--dataset", f"events:{tmp_path / 'rec'}",
                     "--backend", "golden", "--no-progress", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == f"events:{tmp_path / 'rec'}"
    # 10 training recordings, 2 held out (one per class) for validation, 10 test.
    assert metrics["validation_accuracy"] * 2 in (0, 1, 2)
    assert metrics["test_accuracy"] * 10 == pytest.approx(round(metrics["test_accuracy"] * 10))
    for picture in ("curve.png", "raster.png", "weights.png"):
        assert (out / picture).read_bytes()[:4] == b"\x89PNG"


def test_train_on_mnist_format_files_with_the_mnist_example(tmp_path, capsys):
    """examples/erbp-mnist.toml (784-200-10) trains on IDX files made from the digits."""
    from plasticore.datasets.digits import write_digits_idx
    write_digits_idx(tmp_path / "mnist", compress=True)
    out = tmp_path / "out"
    code = cli_main(["train", "examples/erbp-mnist.toml", "--dataset", f"idx:{tmp_path / 'mnist'}",
                     "--backend", "float", "--epochs", "1", "--limit-train", "4",
                     "--limit-test", "3", "--no-progress", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    weights = np.load(out / "weights.npz")
    assert weights["w0"].shape == (784, 200) and weights["w1"].shape == (200, 10)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["extra"]["n_train"] == 4 and metrics["extra"]["n_test"] == 3


def test_train_with_seeds_reports_mean_and_sd(tmp_path, capsys):
    write_recording_dir(tmp_path / "rec", "npz", n_per_class=4)
    config = tmp_path / "tiny.toml"
    config.write_text(DECOLLE_TINY.format(inputs=8, classes=2))
    out = tmp_path / "out"
    code = cli_main(["train", str(config), "--dataset", f"events:{tmp_path / 'rec'}",
                     "--backend", "float", "--seeds", "0", "1", "2", "--no-progress", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "metrics.json").read_text())
    per_seed = [json.loads((out / f"seed-{s}" / "metrics.json").read_text())["test_accuracy"]
                for s in (0, 1, 2)]
    assert summary["seeds"] == [0, 1, 2] and summary["test_accuracy_per_seed"] == per_seed
    assert summary["test_accuracy_mean"] == pytest.approx(np.mean(per_seed))
    assert summary["test_accuracy_sd"] == pytest.approx(np.std(per_seed, ddof=1))
    assert "last epoch over seeds 0 1 2" in capsys.readouterr().out


@pytest.mark.parametrize("spec,message", [
    ("mnist", "must be one of digits, idx:DIR"),
    ("idx:{missing}", "does not exist"),
    ("idx:{bad}", "magic = 0x"),
    ("events:{missing}", "does not exist"),
    ("events:{bad}/t10k-labels-idx1-ubyte", "is a file: give the directory"),
])
def test_bad_dataset_is_one_line_and_exit_code_2(tmp_path, capsys, spec, message):
    bad = write_idx_dir(tmp_path / "bad")
    (bad / "train-images-idx3-ubyte").write_bytes(b"\x12\x34\x56\x78" + bytes(20))
    code = cli_main(["train", "examples/erbp-digits.toml", "--dataset",
                     spec.format(missing=tmp_path / "nowhere", bad=bad), "--no-progress",
                     "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_data_that_does_not_fit_the_network_is_one_line(tmp_path, capsys):
    write_idx_dir(tmp_path / "mnist")
    code = cli_main(["train", "examples/erbp-digits.toml", "--dataset", f"idx:{tmp_path / 'mnist'}",
                     "--no-progress", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "784 inputs per sample, the config 64 (layers[0])" in err
    assert err.count("\n") == 1


def test_saccades_of_idx_files_use_the_image_shape(tmp_path):
    write_idx_dir(tmp_path, n_train=4, n_test=2)
    settings = DataSettings(saccade_amplitude=3.0, saccade_steps=5, downsample=2, time_window=3000)
    split = load_dataset(f"saccades:idx:{tmp_path}", settings)
    # 28 + ceil(3) = 31 pixels a side, pooled by 2 -> 16, two polarities.
    assert split.n_inputs == 2 * 16 * 16 and len(split.train) == 4 and len(split.test) == 2
    assert split.name == f"saccades:idx:{tmp_path}"
