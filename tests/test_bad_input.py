"""Every bad input is refused cleanly: on every construction path, before large allocations,
and on the command line as one line with exit code 2."""

import dataclasses

import pytest

from plasticore import ConfigError, CoreConfig
from plasticore.cli import main
from plasticore.config import MAX_FLOW_SYNAPSES

ERBP = CoreConfig.from_dict({"layers": [4, 3, 2], "rule": "erbp", "threshold": 100, "leak_shift": 2,
                             "erbp": {"soma_gain_shift": 3, "gate_low": -200, "gate_high": 200,
                                      "error_threshold": 100, "error_input_weight": 100,
                                      "feedback_output_weight": 50, "feedback_hidden_scale": 50}})
DECOLLE = CoreConfig.from_toml("examples/decolle-digits.toml")


@pytest.mark.parametrize("replace", [dataclasses.replace, CoreConfig.replace])
def test_replace_revalidates_the_rule_parameters(replace):
    # soma_gain_shift = 3 needs membrane_bits - weight_bits >= 3.
    assert ERBP.learning.soma_gain_shift == 3 and ERBP.weight_bits == 8
    with pytest.raises(ConfigError) as caught:
        replace(ERBP, membrane_bits=9)
    assert caught.value.field == "erbp.soma_gain_shift"
    assert "between 0 and 1" in str(caught.value)


def test_replace_refuses_a_shape_the_rule_cannot_run():
    with pytest.raises(ConfigError, match="eRBP needs at least one hidden layer"):
        dataclasses.replace(ERBP, layers=(3, 4))
    # DECOLLE's per-layer lists no longer match two neuron layers more.
    with pytest.raises(ConfigError) as caught:
        dataclasses.replace(DECOLLE, layers=DECOLLE.layers + (10, 10))
    assert caught.value.field.startswith("decolle.")


def test_parameters_of_another_rule_are_refused():
    with pytest.raises(ConfigError, match="must be plasticore.rules.erbp.Params"):
        CoreConfig(layers=(4, 3, 2), rule="erbp", learning=DECOLLE.learning)


def test_a_rule_without_a_table_gets_validated_defaults():
    config = CoreConfig(layers=(4, 3, 2), rule="erbp", weight_bits=8, membrane_bits=16)
    assert config.learning is not None and config.learning.soma_gain_shift == 3
    # The defaults themselves are validated: they need membrane_bits - weight_bits >= 3.
    with pytest.raises(ConfigError, match="erbp.soma_gain_shift"):
        CoreConfig(layers=(4, 3, 2), rule="erbp", weight_bits=8, membrane_bits=10)


@pytest.mark.parametrize("rule", ["erbp", "decolle"])
def test_label_addresses_must_fit_sixteen_bits(rule):
    # Labels arrive at n_inputs + k; 65535 + 2 does not fit a 16-bit address.
    with pytest.raises(ConfigError) as caught:
        CoreConfig.from_dict({"layers": [65535, 2, 3], "rule": rule})
    assert caught.value.field == "layers"
    assert "label addresses" in str(caught.value) and "65536" in str(caught.value)
    # The largest input layer that still fits is accepted.
    assert CoreConfig.from_dict({"layers": [65533, 2, 3], "rule": "erbp"}).n_inputs == 65533


def test_more_than_255_neuron_layers_is_a_config_error():
    assert len(CoreConfig(layers=(2,) * 256).neuron_layers) == 255
    with pytest.raises(ConfigError) as caught:
        CoreConfig(layers=(2,) * 257)
    assert caught.value.field == "layers"
    assert "256 neuron layers; at most 255" in str(caught.value)


HUGE = 'layers = [65536, 65536, 10]\n'


def test_size_is_checked_before_allocation():
    config = CoreConfig.from_dict({"layers": [65536, 65536, 10]})
    with pytest.raises(ConfigError) as caught:
        config.check_size()
    message = str(caught.value)
    assert "too large" in message and str(config.n_synapses) in message
    assert str(MAX_FLOW_SYNAPSES) in message
    CoreConfig(layers=(1024, 1024, 10)).check_size()     # 1,058,816 synapses: fine


@pytest.mark.parametrize("command", [
    ["generate", "{path}", "-o", "{out}"],
    ["verify", "{path}", "--build-dir", "{out}"],
    ["bench", "{path}", "--build-dir", "{out}"],
    ["build", "{path}", "--board", "icebreaker", "-o", "{out}"],
])
def test_huge_config_is_refused_by_every_command(command, tmp_path, capsys):
    path = tmp_path / "huge.toml"
    path.write_text(HUGE)
    argv = [part.format(path=path, out=tmp_path / "out") for part in command]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1
    assert "too large" in error and str(MAX_FLOW_SYNAPSES) in error


@pytest.mark.parametrize("command", [
    ["generate", "{path}", "-o", "{out}"],
    ["verify", "{path}"],
    ["bench", "{path}"],
    ["build", "{path}", "--board", "icebreaker", "-o", "{out}"],
    ["train", "{path}"],
])
@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_file_errors_are_one_line_with_exit_code_2(command, kind, tmp_path, capsys):
    path = tmp_path / "missing.toml"
    if kind == "directory":
        path = tmp_path / "a_directory"
        path.mkdir()
    argv = [part.format(path=path, out=tmp_path / "out") for part in command]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1, error
    reason = "No such file or directory" if kind == "missing" else "Is a directory"
    assert error[0] == f"plasticore: {path}: {reason}"
