"""Parameters of the learning rules, one module per rule.

``plasticore.rules.<rule>.Params`` is a frozen dataclass with
``from_dict(table, core) -> Params`` (validating against the core, raising
:class:`plasticore.config.ConfigError`) and ``to_dict() -> dict``. A TOML config with
``rule = "<rule>"`` puts these parameters in a ``[<rule>]`` table.
"""

from plasticore.config import ConfigError

__all__ = ["rule_params"]


def rule_params(config, rule: str, user: str):
    """Return ``config.learning`` when ``config`` carries ``rule`` with its parameter table.

    ``user`` names what needs the rule (for the message), e.g. ``"the eRBP golden model"``.
    """
    if config.rule != rule or config.learning is None:
        raise ConfigError("rule", config.rule,
                          f'{user} needs rule = "{rule}" with a [{rule}] table')
    return config.learning
