"""Formal port properties (SymbiYosys, bounded model checking): the cores satisfy them to
the stated depth, and deliberately broken cores fail the property each one breaks."""

import pytest

from plasticore import CoreConfig
from plasticore.sim.formal import prove

pytestmark = pytest.mark.formal

# The smallest cores: a tick ends within a dozen cycles, so a bounded proof of 20 cycles
# covers reset, host accesses during and between ticks, and several whole ticks.
INFERENCE = CoreConfig(layers=(1, 1), weight_bits=3, membrane_bits=4, leak_shift=1,
                       threshold=2, name="formal")
DEPTH = 20
ACK_BOUND = 12


def test_inference_core_satisfies_its_port_properties():
    result = prove(INFERENCE, depth=DEPTH, ack_bound=ACK_BOUND)
    assert result.passed, result.text[-2000:]


@pytest.mark.parametrize("mutant, broken", [
    ("unstable_output", "output_stream"),
    ("lost_input", "ticks_in_order"),
    ("late_ack", "host_ack"),
])
def test_a_broken_core_fails_the_property_it_breaks(mutant, broken):
    result = prove(INFERENCE, depth=DEPTH, ack_bound=ACK_BOUND, mutant=mutant,
                   properties=(broken,))
    assert result.status == "FAIL", result.text[-2000:]
    assert "failed assertion" in result.text
