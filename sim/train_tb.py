"""cocotb testbench: train on the generated Verilog of a learning core (``--backend rtl``).

The trainer (:func:`plasticore.train_erbp.fit`) is ordinary blocking Python; here it runs
in a cocotb bridge thread against :class:`RtlErbpModel`, whose methods drive the core
through its host port and event streams and block until the simulation has done the work.
A golden model runs as a shadow: it presents each sample first (on the compiled engine, all
the sample's ticks in one call, unless the job's ``engine`` is ``"numpy"``), then every
tick's spikes of the RTL are compared with its, and the weights when the trainer reads
them, so a training run on RTL is also a bit-exactness run.

The job comes from the JSON file named by ``PLASTICORE_CASE`` (written by
:func:`plasticore.sim.runner.run_training`); the result (the trainer's metrics and
weights, or the first mismatch) goes to the path it names.
"""

from __future__ import annotations


import cocotb
import numpy as np
from cocotb.task import bridge, resume

from plasticore.config import CoreConfig
from plasticore.datasets import load_training_split
from plasticore.golden.engine import erbp_core
from plasticore.golden.erbp import sample_events
from plasticore.layout import CoreLayout
from plasticore.sim.core_tb import CoreBench, run_job
from plasticore.sim.scoreboard import Mismatch, Scoreboard

__all__ = ["RtlErbpModel"]


class RtlErbpModel:
    """The eRBP core in simulation, with the model API the eRBP trainer uses.

    Parameters
    ----------
    bench : plasticore.sim.core_tb.CoreBench
    config : CoreConfig
    weights : list of numpy.ndarray, optional
        Initial weights (default: the golden model's :func:`initial_weights`).
    engine : {"fast", "numpy"}, optional
        The golden shadow's engine (:mod:`plasticore.golden.engine`).
    """

    def __init__(self, bench: CoreBench, config: CoreConfig, weights=None,
                 engine: str | None = None):
        self.bench = bench
        self.config = config
        self.layout = CoreLayout(config)
        self.golden = erbp_core(config, weights, engine=engine)
        self.scoreboard = Scoreboard(bench, self.golden, self.layout)
        self.params = self.golden.params
        self.ticks = 0
        self.cycles = 0

    # --- what the trainer calls (blocking, from the bridge thread) -------------------

    @property
    def learning_rate_shift(self) -> int:
        return self.golden.learning_rate_shift

    @learning_rate_shift.setter
    def learning_rate_shift(self, value: int) -> None:
        self._write_register("learning_rate_shift", int(value))
        self.golden.learning_rate_shift = int(value)

    @property
    def flags(self) -> int:
        return self._read_register("flags")

    def run_sample(self, raster, label_raster=None, *, learn: bool,
                   count_from: int | None = None):
        """Present one sample; return the prediction layer's spike counts (as golden's)."""
        return self._present(raster, label_raster, learn, count_from)

    def read_weights(self) -> list[np.ndarray]:
        """Read every weight from the core; they must equal the golden shadow's."""
        return self._read_weights()

    # --- the simulation side ----------------------------------------------------------------

    @resume
    async def load(self) -> None:
        await self.bench.load(self.layout, self.golden.weights)
        for name in ("burn_in_ticks", "learning_rate_shift"):
            await self.bench.host_write(self.layout.register_address(name),
                                        int(getattr(self.golden, name)))

    @resume
    async def _write_register(self, name: str, value: int) -> None:
        await self.bench.host_write(self.layout.register_address(name), value)

    @resume
    async def _read_register(self, name: str) -> int:
        return (await self.bench.host_read(self.layout.register_address(name))) & 0xFFFFFFFF

    @resume
    async def _present(self, raster, label_raster, learn, count_from):
        golden, bench, layout = self.golden, self.bench, self.layout
        if count_from is None:
            count_from = self.params.burn_in_ticks
        await bench.host_write(layout.register_address("sample_tick"), 0)
        await bench.host_write(layout.register_address("learning_enabled"), int(learn))
        golden.start_sample()
        golden.learning_enabled = learn
        counts = np.zeros(self.config.layers[-1], dtype=np.int64)
        # Tick by tick, so that the scoreboard sees the shadow's counters and flags after
        # every tick (the simulated RTL, not the shadow, sets the pace).
        for t, events in enumerate(sample_events(self.config.n_inputs, raster, label_raster)):
            # The core tags its outputs with its tick counter, golden's before this tick.
            tag = golden.tick_count
            expected = golden.tick(events)
            outputs, cycles = await bench.run_tick(events)
            await self.scoreboard.after_tick(tag, outputs, expected)
            if t >= count_from:
                counts[expected[-1]] += 1
            self.ticks += 1
            self.cycles += cycles
        golden.learning_enabled = False
        await bench.host_write(layout.register_address("learning_enabled"), 0)
        return counts

    @resume
    async def _read_weights(self):
        # The scoreboard reads every weight, state word and register back; equal to the
        # golden shadow's, they are what the trainer gets.
        await self.scoreboard.check_state(f"after tick {self.golden.tick_count}")
        return [matrix.copy() for matrix in self.golden.weights]


async def _train(dut, job: dict) -> dict:
    config = CoreConfig.from_dict(job["config"])
    if config.rule != "erbp":
        raise ValueError(f"rule = {config.rule!r}: RTL training is built for eRBP")
    from plasticore.train_erbp import fit

    bench = CoreBench(dut, np.random.default_rng(0), 1.0,
                      cycles_per_event=4 * (config.n_synapses + 4 * config.n_neurons))
    await bench.start(ready=1)

    options = dict(job["options"])
    init_weights = options.pop("init_weights", None)
    model = RtlErbpModel(bench, config, init_weights, engine=options.get("engine"))
    result = {"mismatch": None}

    def train():
        # Blocking code: each model call waits for the simulation to do its part.
        model.load()
        # Given starting weights are evaluated first, as golden's trainer does.
        trained = fit(config, load_training_split("digits", config), backend="rtl", model=model,
                      progress=False, evaluate_start=init_weights is not None, **options)
        return trained, model.flags

    try:
        trained, flags = await bridge(train)()
        result.update({
            "epochs": [vars(metrics) for metrics in trained.epochs],
            "weights": [w.tolist() for w in trained.weights],
            "extra": {**trained.extra, "ticks": model.ticks, "cycles": model.cycles,
                      "flags": flags},
        })
    except Mismatch as mismatch:
        result["mismatch"] = mismatch.as_json()
    return result


@cocotb.test()
async def train_on_rtl(dut):
    """Run the training job named by PLASTICORE_CASE and write its result."""
    await run_job(dut, _train)
