"""The snnTorch round trip through NIR: a network built in snnTorch imports and spikes like
it did in snnTorch; a core exported to NIR runs in snnTorch and spikes like the golden model.

The same tolerance as tests/test_nir.py (docs/nir.md): per-layer spike counts within 10 %
(the core floors its leak and rounds its weights; snnTorch multiplies in float32).
snnTorch and a CPU build of torch come with the ``snntorch`` extra, which
``scripts/ensure-env.sh`` installs.
"""

from __future__ import annotations

import numpy as np
import snntorch as snn
import torch
from snntorch import utils as snn_utils
from snntorch.export_nir import export_to_nir
from snntorch.import_nir import import_from_nir

from plasticore.config import CoreConfig
from plasticore.golden.lif import GoldenCore
from plasticore.nir_io import import_graph, simulate_graph

SIZES = (24, 16, 6)
BETA = 1 - 2 ** -4             # tau = 16 dt: leak_shift 4, exactly
TOLERANCE = 0.10


def events(seed=1, ticks=400, rate=0.3):
    rng = np.random.default_rng(seed)
    return [np.flatnonzero(rng.random(SIZES[0]) < rate) for _ in range(ticks)]


def one_hot(addresses):
    x = torch.zeros(1, SIZES[0])
    x[0, addresses] = 1
    return x


def raster_of(run, layer, n):
    raster = np.zeros((len(run), n), dtype=bool)
    for tick, spikes in enumerate(run):
        raster[tick, spikes[layer]] = True
    return raster


def assert_counts_close(got, want):
    assert want.sum() > 3 * want.shape[1], "too few spikes for the check to mean much"
    assert np.abs(got.sum(axis=0) - want.sum(axis=0)).sum() / want.sum() <= TOLERANCE, (
        got.sum(axis=0), want.sum(axis=0))


def test_snntorch_network_imports_and_spikes_as_in_snntorch():
    torch.manual_seed(0)

    def leaky(n, **options):
        # Per-neuron beta and threshold: snnTorch exports their shapes to NIR as given.
        return snn.Leaky(beta=torch.full((n,), BETA), threshold=torch.ones(n),
                         init_hidden=True, reset_mechanism="zero", reset_delay=False, **options)

    net = torch.nn.Sequential(torch.nn.Linear(SIZES[0], SIZES[1], bias=False), leaky(SIZES[1]),
                              torch.nn.Linear(SIZES[1], SIZES[2], bias=False),
                              leaky(SIZES[2], output=True))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[2].weight.mul_(3.0)
    graph = export_to_nir(net, torch.zeros(1, SIZES[0]), ignore_dims=[0])
    result = import_graph(graph)
    assert result.config.layers == SIZES and result.config.leak_shift == 4

    ticks = events()
    snn_utils.reset(net)
    with torch.no_grad():
        output = np.array([net(one_hot(e))[0][0].numpy() for e in ticks], dtype=bool)
    # Our float reading of the graph is snnTorch's, spike for spike...
    np.testing.assert_array_equal(raster_of(simulate_graph(graph, ticks), 1, SIZES[2]), output)
    # ...and the imported integer core is within the quantization tolerance.
    core = GoldenCore(result.config, result.weights).run(ticks)
    assert_counts_close(raster_of(core, 1, SIZES[2]), output)


def test_exported_core_runs_in_snntorch(tmp_path):
    import nir

    from plasticore.cli import main as cli_main
    from plasticore.weights_file import save_weights

    config = CoreConfig(layers=SIZES, weight_bits=8, membrane_bits=16, leak_shift=4,
                        threshold=100, name="to_snntorch")
    rng = np.random.default_rng(2)
    weights = [rng.integers(-20, 50, size=(SIZES[0], SIZES[1])),
               rng.integers(-30, 60, size=(SIZES[1], SIZES[2]))]
    (tmp_path / "core.toml").write_text(
        "layers = [24, 16, 6]\nweight_bits = 8\nmembrane_bits = 16\nleak_shift = 4\n"
        "threshold = 100\nname = \"to_snntorch\"\n")
    save_weights(tmp_path / "w.npz", weights)
    assert cli_main(["export", str(tmp_path / "core.toml"), "--weights", str(tmp_path / "w.npz"),
                     "-o", str(tmp_path / "core.nir")]) == 0
    module = import_from_nir(nir.read(tmp_path / "core.nir"))

    ticks = events(seed=3)
    state, output = None, []
    with torch.no_grad():
        for e in ticks:
            spikes, state = module(one_hot(e)) if state is None else module(one_hot(e), state)
            output.append(spikes[0].numpy())
    output = np.array(output, dtype=bool)
    golden = raster_of(GoldenCore(config, weights).run(ticks), 1, SIZES[2])
    assert_counts_close(golden, output)
    # The leak differs only by the floor: nearly every spike decision is the same.
    assert (golden != output).mean() < 0.02
