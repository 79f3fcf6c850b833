"""NIR import and export: graphs built with ``nir`` itself, refusals, round trips, and the
imported core's spikes against a float simulation of the graph.

Agreement tolerance (docs/nir.md): quantization (8-bit weights, a floor-shift leak, integer
membranes) is a legitimate difference between the core and the float graph, so spike
*counts* are compared per layer over a run: ``sum |count_core - count_float| /
sum count_float <= 0.10``. Golden against RTL stays bit-exact (``verify --weights``).
"""

from __future__ import annotations

import nir
import numpy as np
import pytest

from plasticore.cli import main as cli_main
from plasticore.config import CoreConfig
from plasticore.golden.erbp import initial_weights
from plasticore.golden.lif import GoldenCore
from plasticore.nir_io import (NirImportError, export_graph, export_losses, import_graph,
                               parse_graph, simulate_graph)
from plasticore.weights_file import load_weights, save_weights

DT = 1e-4
TOLERANCE = 0.10
SIZES = (24, 16, 6)


def lif(n, tau_ticks=16.0, threshold=1.0):
    tau = np.full(n, tau_ticks * DT)
    return nir.LIF(tau=tau, r=tau / DT, v_leak=np.zeros(n), v_threshold=np.full(n, threshold))


def chain(*middle, sizes=SIZES):
    """Input -> middle nodes in order -> Output, named n1, n2, ..."""
    nodes = {"input": nir.Input(input_type={"input": np.array([sizes[0]])})}
    names = ["input"]
    for index, node in enumerate(middle, 1):
        nodes[f"n{index}"] = node
        names.append(f"n{index}")
    nodes["output"] = nir.Output(output_type={"output": np.array([sizes[-1]])})
    names.append("output")
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])))


def float_two_layer(seed=0, neurons=("LIF", "LIF"), thresholds=(1.0, 1.0)):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (SIZES[1], SIZES[0]))
    w2 = rng.normal(0, 0.4, (SIZES[2], SIZES[1]))

    def neuron(kind, n, threshold):
        if kind == "LIF":
            return lif(n, threshold=threshold)
        if kind == "IF":
            # No leak: a smaller gain than the LIF's keeps the rates comparable.
            return nir.IF(r=np.full(n, 1 / (4 * DT)), v_threshold=np.full(n, threshold))
        tau_mem = np.full(n, 16 * DT)
        return nir.CubaLIF(tau_syn=np.full(n, DT), tau_mem=tau_mem, r=tau_mem / DT,
                           v_leak=np.zeros(n), v_threshold=np.full(n, threshold),
                           w_in=np.ones(n))

    return chain(nir.Affine(weight=w1, bias=np.zeros(SIZES[1])),
                 neuron(neurons[0], SIZES[1], thresholds[0]),
                 nir.Linear(weight=w2), neuron(neurons[1], SIZES[2], thresholds[1]))


def input_events(seed=1, ticks=400, rate=0.3, n=SIZES[0]):
    rng = np.random.default_rng(seed)
    return [np.flatnonzero(rng.random(n) < rate) for _ in range(ticks)]


def spike_counts(run, layer, n):
    counts = np.zeros(n, dtype=np.int64)
    for tick in run:
        counts[tick[layer]] += 1
    return counts


def assert_spikes_agree(graph, result, events):
    core = GoldenCore(result.config, result.weights).run(events)
    reference = simulate_graph(graph, events, DT)
    for layer, n in enumerate(result.config.neuron_layers):
        got, want = spike_counts(core, layer, n), spike_counts(reference, layer, n)
        assert want.sum() > 2 * n, f"layer {layer + 1} barely spikes: the check proves little"
        difference = np.abs(got - want).sum() / want.sum()
        assert difference <= TOLERANCE, (layer, got, want)


@pytest.mark.parametrize("neurons", [("LIF", "LIF"), ("IF", "IF"), ("CubaLIF", "CubaLIF")])
def test_two_layer_graph_imports_and_spikes_like_the_float_graph(neurons):
    graph = float_two_layer(neurons=neurons)
    result = import_graph(graph, dt=DT)
    config = result.config
    assert config.layers == SIZES
    assert config.leak_shift == (0 if neurons[0] == "IF" else 4)   # tau = 16 dt
    low, high = config.weight_range
    assert all(low <= w.min() and w.max() <= high for w in result.weights)
    # The scale uses the weight range: the largest weight is near the top of it.
    assert max(int(np.abs(w).max()) for w in result.weights) >= high - 2
    assert any(line.startswith("projection 1 (n1 -> n2") for line in result.report)
    assert any("RMS rounding error" in line for line in result.report)
    assert_spikes_agree(graph, result, input_events())


def test_per_neuron_thresholds_fold_into_the_weights():
    graph = float_two_layer(seed=3, thresholds=(0.5, 2.0))
    result = import_graph(graph, dt=DT)
    assert_spikes_agree(graph, result, input_events(seed=4, rate=0.4))


def test_leak_that_is_not_a_power_of_two_is_reported():
    n = SIZES
    graph = chain(nir.Linear(weight=np.ones((n[1], n[0]))), lif(n[1], tau_ticks=20),
                  nir.Linear(weight=np.ones((n[2], n[1]))), lif(n[2], tau_ticks=20))
    result = import_graph(graph, dt=DT)
    assert result.config.leak_shift == 4                  # log2(20) = 4.32
    leak = next(line for line in result.report if line.startswith("leak:"))
    assert "0.95 (dt" in leak and "time constant off by up to 25 %" in leak


def refused(graph, dt=DT):
    with pytest.raises(NirImportError) as caught:
        import_graph(graph, dt=dt)
    return str(caught.value)


def test_unsupported_and_inexpressible_nodes_are_refused_by_name():
    n = SIZES
    w1, w2 = np.ones((n[1], n[0])), np.ones((n[2], n[1]))
    assert refused(chain(nir.Linear(weight=w1), nir.Scale(scale=np.ones(n[1])), lif(n[1]),
                         nir.Linear(weight=w2), lif(n[2]))).startswith(
        "node 'n2' (Scale): not supported")
    message = refused(chain(nir.Affine(weight=w1, bias=np.full(n[1], 0.1)), lif(n[1]),
                            nir.Linear(weight=w2), lif(n[2])))
    assert message.startswith("node 'n1' (Affine): bias is non-zero")
    tau = np.full(n[2], 16 * DT)
    slow_synapse = nir.CubaLIF(tau_syn=np.full(n[2], 5 * DT), tau_mem=tau, r=tau / DT,
                               v_leak=np.zeros(n[2]), v_threshold=np.ones(n[2]))
    message = refused(chain(nir.Linear(weight=w1), lif(n[1]), nir.Linear(weight=w2),
                            slow_synapse))
    assert message.startswith("node 'n4' (CubaLIF): tau_syn = 0.0005 s keeps the synaptic")
    message = refused(chain(nir.Linear(weight=w1), lif(n[1]), nir.Linear(weight=w2),
                            lif(n[2], tau_ticks=64)))
    assert message.startswith("node 'n4' (LIF): leak shift 6") and "one leak shift" in message
    leaky_rest = lif(n[1])
    leaky_rest.v_leak = np.full(n[1], -0.1)
    assert refused(chain(nir.Linear(weight=w1), leaky_rest, nir.Linear(weight=w2),
                         lif(n[2]))).startswith("node 'n2' (LIF): v_leak is non-zero")
    assert "below 1.5 dt" in refused(chain(nir.Linear(weight=w1), lif(n[1], tau_ticks=1),
                                           nir.Linear(weight=w2), lif(n[2], tau_ticks=1)))
    assert refused(chain(nir.Linear(weight=w1), nir.Linear(weight=np.ones((n[1], n[1]))),
                         lif(n[1]), sizes=n[:2])).startswith("node 'n2' (Linear): follows 'n1' directly")


def test_recurrent_and_branching_graphs_are_refused():
    n = SIZES
    graph = chain(nir.Linear(weight=np.ones((n[1], n[0]))), lif(n[1]),
                  nir.Linear(weight=np.ones((n[2], n[1]))), lif(n[2]))
    graph.nodes["recurrent"] = nir.Linear(weight=np.eye(n[1]))
    graph.edges += [("n2", "recurrent"), ("recurrent", "n2")]
    assert refused(graph) == ("node 'n2' (LIF): is on the loop n2 -> recurrent -> n2: "
                              "recurrent graphs are not supported yet")
    graph = chain(nir.Linear(weight=np.ones((n[1], n[0]))), lif(n[1]),
                  nir.Linear(weight=np.ones((n[2], n[1]))), lif(n[2]))
    graph.edges.append(("n4", "n1"))            # a loop back to the first projection
    assert "is on the loop n1 -> n2 -> n3 -> n4 -> n1: recurrent" in refused(graph)
    graph = chain(nir.Linear(weight=np.ones((n[1], n[0]))), lif(n[1]),
                  nir.Linear(weight=np.ones((n[2], n[1]))), lif(n[2]))
    graph.nodes["skip"] = nir.Linear(weight=np.ones((n[2], n[0])))
    graph.edges += [("input", "skip"), ("skip", "n4")]
    assert refused(graph).startswith("node 'input' (Input): feeds 2 nodes (n1, skip)")
    inner = chain(nir.Linear(weight=np.eye(n[1])), lif(n[1]), sizes=(n[1], n[1]))
    graph = chain(nir.Linear(weight=np.ones((n[1], n[0]))), inner, sizes=n[:2])
    assert refused(graph).startswith("node 'n2' (NIRGraph): a nested graph")


def test_cli_refuses_in_one_line_with_exit_code_2(tmp_path, capsys):
    n = SIZES
    graph = chain(nir.Linear(weight=np.ones((n[1], n[0]))), nir.Threshold(
        threshold=np.ones(n[1])), nir.Linear(weight=np.ones((n[2], n[1]))), lif(n[2]))
    nir.write(tmp_path / "bad.nir", graph)
    assert cli_main(["import", str(tmp_path / "bad.nir"), "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith("plasticore import: ") and "node 'n2' (Threshold): not supported" \
        in error


def test_cli_import_export_reload_is_exact(tmp_path, capsys):
    nir.write(tmp_path / "model.nir", float_two_layer(seed=5))
    out = tmp_path / "imported"
    assert cli_main(["import", str(tmp_path / "model.nir"), "-o", str(out)]) == 0
    assert "projection 2 (n3 -> n4, LIF)" in capsys.readouterr().out
    config = CoreConfig.from_toml(out / "model.toml")
    weights = load_weights(out / "weights.npz", config)
    assert (out / "import-report.txt").read_text().count("projection") == 2
    assert cli_main(["export", str(out / "model.toml"), "--weights", str(out / "weights.npz"),
                     "-o", str(tmp_path / "back.nir")]) == 0
    again = tmp_path / "again"
    assert cli_main(["import", str(tmp_path / "back.nir"), "-o", str(again)]) == 0
    assert "projection 1 (linear1 -> lif1, LIF): 384 weights, exact" in capsys.readouterr().out
    assert CoreConfig.from_toml(again / "model.toml") == config
    for got, want in zip(load_weights(again / "weights.npz", config), weights):
        np.testing.assert_array_equal(got, want)


def erbp_config():
    from plasticore.rules.erbp import Params
    core = CoreConfig(layers=(12, 8, 3), weight_bits=10, membrane_bits=16, leak_shift=4,
                      threshold=500, refractory_ticks=4, reset="subtract", name="small")
    return core.replace(rule="erbp", learning=Params.from_dict(
        {"soma_gain_shift": 1, "initial_weight_range": [64, 16]}, core))


def test_learning_core_exports_with_its_losses_listed_and_reloads_exactly(tmp_path):
    config = erbp_config()
    weights = initial_weights(config)
    graph = export_graph(config, weights, dt=DT)
    # What other NIR readers see: the delivered weight w << soma_gain_shift.
    np.testing.assert_array_equal(graph.nodes["linear1"].weight, weights[0].T * 2)
    assert graph.nodes["lif1"].v_threshold[0] == 499.5
    losses = export_losses(config)
    assert [loss.split(" ")[0] for loss in losses] == ["refractory_ticks", "reset", "rule"]
    nir.write(tmp_path / "erbp.nir", graph)
    result = import_graph(nir.read(tmp_path / "erbp.nir"), dt=DT)
    assert result.config == config
    for got, want in zip(result.weights, weights):
        np.testing.assert_array_equal(got, want)


def test_template_quantizes_for_a_learning_core():
    config = erbp_config()
    rng = np.random.default_rng(7)
    sizes = config.layers
    graph = chain(nir.Linear(weight=rng.normal(0, 0.2, (sizes[1], sizes[0]))), lif(sizes[1]),
                  nir.Linear(weight=rng.normal(0, 0.2, (sizes[2], sizes[1]))), lif(sizes[2]),
                  sizes=sizes)
    result = import_graph(graph, dt=DT, template=config)
    assert result.config == config
    # Threshold 500 and gain 2: a weight w of the graph becomes w * 499.5 / 2, rounded.
    expected = np.rint(np.asarray(graph.nodes["n1"].weight).T * 499.5 / 2)
    np.testing.assert_array_equal(result.weights[0], np.clip(expected, -512, 511))
    with pytest.raises(NirImportError, match=r"layers \[12, 8, 3\] differ"):
        import_graph(graph, dt=DT, template=config.replace(layers=(12, 9, 3)))


def test_exported_if_core_runs_in_the_float_simulation_exactly():
    config = CoreConfig(layers=SIZES, weight_bits=6, membrane_bits=12, leak_shift=0,
                        threshold=40, name="integrate")
    weights = [np.random.default_rng(8).integers(-20, 32, size=shape)
               for shape in zip(SIZES, SIZES[1:])]
    graph = export_graph(config, weights, dt=0.5)    # r = 1 / dt is exact in binary
    events = input_events(seed=9, ticks=100)
    golden = GoldenCore(config, weights).run(events)
    reference = simulate_graph(graph, events, 0.5)
    assert sum(len(tick[0]) for tick in golden) > 50
    for tick, (got, want) in enumerate(zip(golden, reference)):
        assert [g.tolist() for g in got] == [w.tolist() for w in want], tick


def test_weights_file_errors_name_the_problem(tmp_path):
    config = CoreConfig(layers=(3, 2), name="tiny")
    save_weights(tmp_path / "w.npz", [np.full((3, 2), 0.5)])
    with pytest.raises(ValueError, match="w0 holds fractional values"):
        load_weights(tmp_path / "w.npz", config)
    save_weights(tmp_path / "w.npz", [np.full((3, 2), 200)])
    with pytest.raises(ValueError, match=r"w\.npz: weights\[0\] .*\[-128, 127\]"):
        load_weights(tmp_path / "w.npz", config)
    np.savez(tmp_path / "odd.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="holds a; a weights file holds w0, w1"):
        load_weights(tmp_path / "odd.npz", config)
    assert parse_graph(float_two_layer(), DT)[0] == SIZES[0]


@pytest.mark.rtl
def test_imported_core_verifies_bit_exact_in_rtl_with_its_weights(tmp_path, capsys):
    import os
    build_root = os.environ.get("PLASTICORE_BUILD_ROOT", "build/sim")
    nir.write(tmp_path / "model.nir", float_two_layer(seed=6))
    out = tmp_path / "imported"
    assert cli_main(["import", str(tmp_path / "model.nir"), "-o", str(out)]) == 0
    config = str(out / "model.toml")
    common = ["--ticks", "80", "--build-dir", build_root]
    assert cli_main(["verify", config, *common]) == 0
    assert cli_main(["verify", config, "--weights", str(out / "weights.npz"),
                     "--activity", "0.3", *common]) == 0
    verdicts = [line for line in capsys.readouterr().out.splitlines()
                if line.startswith("bit-exact")]
    assert len(verdicts) == 2
    spikes = int(verdicts[1].split(", ")[1].split()[0])
    assert spikes > 80, "the imported network barely spiked: the check proves little"
