"""Formal properties (SymbiYosys, bounded model checking): the cores, elaborated with
their own assertions (``checks=True``), satisfy the port properties and those assertions
to the stated depth, and deliberately broken cores fail the property each one breaks."""

import pytest

from plasticore import CoreConfig
from plasticore.sim.formal import prove

pytestmark = pytest.mark.formal

# The smallest cores: a tick ends within a dozen cycles, so a bounded proof of 30 cycles
# covers reset, host accesses during and between ticks, and several whole ticks
# (12 s here; 40 cycles take 44 s).
INFERENCE = CoreConfig(layers=(1, 1), weight_bits=3, membrane_bits=4, leak_shift=1,
                       threshold=2, name="formal")
DEPTH = 30
# The host access takes five cycles (decode, access, read, answer, ack) and a tick with
# registered reads some more than before: a bound of 12 failed at cycle 15.
ACK_BOUND = 18

# The smallest eRBP core with the shortest Threefry (one round). Its tick (error pass,
# dendrites, learning) is longer: a host request waits more than 36 cycles (a bound of 36
# fails at cycle 41, since the passes start from registered pulses and every block RAM
# read is registered), and 54 cycles cover a bound of 48 and more.
ERBP = CoreConfig.from_dict({
    "layers": [1, 1, 1], "rule": "erbp", "weight_bits": 3, "membrane_bits": 6,
    "threshold": 3, "leak_shift": 1, "name": "formal_erbp",
    "erbp": {"prng_rounds": 1, "gate_low": -8, "gate_high": 8, "soma_gain_shift": 0,
             "error_threshold": 2, "error_input_weight": 4, "dendrite_leak_shift": 1,
             "initial_weight_range": [1, 1], "feedback_output_weight": 8,
             "feedback_hidden_scale": 4, "burn_in_ticks": 0}})
ERBP_DEPTH = 54
ERBP_ACK_BOUND = 48

CORES = {"inference": (INFERENCE, DEPTH, ACK_BOUND), "erbp": (ERBP, ERBP_DEPTH, ERBP_ACK_BOUND)}


@pytest.mark.parametrize("core", sorted(CORES))
def test_the_core_satisfies_its_port_properties_and_its_own_assertions(core):
    config, depth, ack_bound = CORES[core]
    result = prove(config, depth=depth, ack_bound=ack_bound)
    assert result.passed, result.text[-2000:]


@pytest.mark.parametrize("mutant, broken", [
    ("unstable_output", "output_stream"),
    ("lost_input", "ticks_in_order"),
    ("late_ack", "host_ack"),
])
def test_a_broken_core_fails_the_port_property_it_breaks(mutant, broken):
    result = prove(INFERENCE, depth=DEPTH, ack_bound=ACK_BOUND, mutant=mutant,
                   properties=(broken,))
    assert result.status == "FAIL", result.text[-2000:]
    assert result.failed and set(result.failed) == {broken}


@pytest.mark.parametrize("core", sorted(CORES))
@pytest.mark.parametrize("mutant, message", [
    # The lane accumulator wraps instead of saturating.
    ("wrapping_sum", "accumulator lane 0 wrapped"),
    # The update pass reads while another part owns the port.
    ("double_owner", "driven by more than one owner in one cycle"),
])
def test_a_broken_core_fails_its_own_assertion(core, mutant, message):
    config, depth, ack_bound = CORES[core]
    result = prove(config, depth=depth, ack_bound=ack_bound, mutant=mutant,
                   properties=("core_checks",))
    assert result.status == "FAIL", result.text[-2000:]
    assert result.failed and all(message in text for text in result.failed), result.failed


def test_an_unknown_mutant_or_property_is_refused():
    with pytest.raises(ValueError, match="mutant = 'nonsense'"):
        prove(INFERENCE, mutant="nonsense")
    with pytest.raises(ValueError, match="properties: 'nonsense'"):
        prove(INFERENCE, properties=("nonsense",))
