"""CoreConfig: validation messages name the field, the value and the limit."""

from dataclasses import replace

import pytest

from plasticore import ConfigError, CoreConfig
from plasticore.layout import CoreLayout, HostAddressError


def test_examples_load():
    inference = CoreConfig.from_toml("examples/inference.toml")
    assert inference.layers == (64, 32, 10)
    assert inference.n_synapses == 64 * 32 + 32 * 10
    tiny = CoreConfig.from_toml("examples/tiny.toml")
    assert tiny.layers == (2, 1, 1)


@pytest.mark.parametrize("changes, field, limit", [
    ({"layers": [4]}, "layers", "at least two entries"),
    ({"layers": [4, 0]}, "layers[1]", "between 1 and 65536"),
    ({"layers": [4, 70000]}, "layers[1]", "between 1 and 65536"),
    ({"weight_bits": 1}, "weight_bits", "between 2 and 16"),
    ({"weight_bits": 8, "membrane_bits": 8}, "membrane_bits", "between 9 and 32"),
    ({"membrane_bits": 8, "weight_bits": 4, "leak_shift": 8}, "leak_shift", "between 0 and 7"),
    ({"membrane_bits": 8, "weight_bits": 4, "threshold": 128}, "threshold", "between 1 and 127"),
    ({"reset": "hold"}, "reset", "zero, subtract"),
    ({"refractory_ticks": 256}, "refractory_ticks", "between 0 and 255"),
    ({"lanes": 3}, "lanes", "1, 2, 4, 8, 16"),
    ({"lanes": True}, "lanes", "integer"),
    ({"rule": "stdp"}, "rule", "none, erbp, decolle"),
    ({"name": "my core"}, "name", "identifier"),
    ({"weight_memory": "sram"}, "weight_memory", "bram, spram"),
    # 784 x 200 + 200 x 10 bytes, two to a 16-bit block word: 80,400 block words, 5 blocks.
    ({"weight_memory": "spram", "layers": [784, 200, 10]}, "weight_memory",
     "need 5 SPRAM blocks of 16384 x 16 bits; at most 4"),
])
def test_bad_values_are_refused_with_field_value_and_limit(changes, field, limit):
    data = {"layers": [4, 3], **changes}
    with pytest.raises(ConfigError) as caught:
        CoreConfig.from_dict(data)
    message = str(caught.value)
    assert caught.value.field == field
    assert message.startswith(f"{field} = ")
    assert repr(caught.value.value) in message
    assert limit in message


def test_decolle_weights_in_spram():
    """The DECOLLE digits network for the iCEBreaker keeps its weights in SPRAM; a DECOLLE
    network whose weights need more than four blocks is refused like any other."""
    icebreaker = CoreConfig.from_toml("examples/decolle-digits-icebreaker.toml")
    assert icebreaker.weight_memory == "spram" and icebreaker.rule == "decolle"
    digits = CoreConfig.from_toml("examples/decolle-digits.toml")
    assert icebreaker == digits.replace(name="decolle_digits_icebreaker", weight_memory="spram",
                                        learning=replace(digits.learning, prng_rounds=6))
    with pytest.raises(ConfigError, match="need 10 SPRAM blocks") as caught:
        digits.replace(layers=(784, 200, 10), weight_memory="spram")
    assert caught.value.field == "weight_memory"


def test_unknown_key_is_refused(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('layers = [2, 2]\nthreshhold = 10\n')
    with pytest.raises(ConfigError, match="threshhold = 10: is not a field"):
        CoreConfig.from_toml(path)


def test_invalid_toml_is_refused(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("layers = [2, 2\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        CoreConfig.from_toml(path)


def test_config_is_frozen_and_round_trips():
    config = CoreConfig.from_toml("examples/inference.toml")
    with pytest.raises(Exception):
        config.threshold = 3
    assert CoreConfig.from_dict(config.to_dict()) == config


def test_layout_places_every_weight_once():
    config = CoreConfig(layers=(3, 5, 2), lanes=4, threshold=10)
    layout = CoreLayout(config)
    # Row words: ceil(5/4) = 2 for layer 1, ceil(2/4) = 1 for layer 2.
    assert [lay.row_words for lay in layout.layers] == [2, 1]
    assert layout.weight_words == 3 * 2 + 5 * 1
    assert layout.accumulator_words == 3
    addresses = {layout.weight_address(lay.index, pre, post)
                 for lay in layout.layers for pre in range(lay.n_pre) for post in range(lay.n_post)}
    assert len(addresses) == config.n_synapses
    with pytest.raises(HostAddressError, match="post = 5: layer 1 has 5 neurons"):
        layout.weight_address(1, 0, 5)
    with pytest.raises(HostAddressError, match="layer 3 does not exist"):
        layout.membrane_address(3, 0)


def test_projection_list_with_layers_as_feedforward_shorthand():
    recurrent = CoreConfig.from_toml("examples/recurrent.toml")
    assert recurrent.projection_pairs == ((0, 1), (1, 2), (1, 1), (2, 1))
    assert recurrent.recurrent == ((1, 1), (2, 1))
    assert recurrent.n_synapses == 32 * 24 + 24 * 10 + 24 * 24 + 10 * 24
    assert CoreConfig.from_dict(recurrent.to_dict()) == recurrent
    # The chain alone is the shorthand: the same config as no list at all.
    chain = CoreConfig(layers=(4, 3, 2), projections=[[1, 2], [0, 1]])
    assert chain == CoreConfig(layers=(4, 3, 2)) and "projections" not in chain.to_dict()
    layout = CoreLayout(recurrent)
    assert [(lay.source, lay.index) for lay in layout.projections] == list(
        recurrent.projection_pairs)
    # Recurrent rows come after every feedforward row of the host map.
    assert layout.recurrent[0].row_base == 32 + 24
    assert layout.projection_address(2, 0, 0) == layout.address(1, (32 + 24) << layout.post_bits)


@pytest.mark.parametrize("projections, field, limit", [
    ([[0, 1]], "projections", "[1, 2] is missing"),
    ([[0, 1], [1, 2], [0, 2]], "projections[2]", "skips a layer"),
    ([[0, 1], [1, 2], [2, 2], [2, 2]], "projections[3]", "appears twice"),
    ([[0, 1], [1, 2], [3, 1]], "projections[2][0] (source)", "between 0 and 2"),
    ([[0, 1], [1, 2], [1, 0]], "projections[2][1] (target)", "between 1 and 2"),
    ([[0, 1, 2]], "projections[0]", "[source, target] pair"),
    ("01", "projections", "list of [source, target]"),
])
def test_bad_projections_are_refused(projections, field, limit):
    with pytest.raises(ConfigError) as caught:
        CoreConfig.from_dict({"layers": [4, 3, 2], "projections": projections})
    assert caught.value.field == field
    assert limit in str(caught.value)


def test_learning_rules_refuse_recurrence():
    data = CoreConfig.from_toml("examples/erbp-digits.toml").to_dict()
    data["projections"] = [[0, 1], [1, 2], [1, 1]]
    with pytest.raises(ConfigError, match='recurrent projections need rule = "none"'):
        CoreConfig.from_dict(data)


def test_weight_memory_round_trips_and_the_default_stays_out_of_the_file():
    spram = CoreConfig(layers=(784, 128, 10), lanes=2, weight_memory="spram")
    assert spram.to_dict()["weight_memory"] == "spram"
    assert CoreConfig.from_dict(spram.to_dict()) == spram
    assert "weight_memory" not in CoreConfig(layers=(4, 3)).to_dict()
    # Exactly the four blocks: 784 x 64 + 128 x 5 = 50,816 words of 16 bits.
    assert CoreConfig.from_toml("examples/mnist-inference-icebreaker.toml") == spram.replace(
        name="mnist_inference_icebreaker", refractory_ticks=2, seed=1)
