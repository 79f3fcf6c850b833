"""Parameters of the learning rules, one module per rule.

``plasticore.rules.<rule>.Params`` is a frozen dataclass with
``from_dict(table, core) -> Params`` (validating against the core, raising
:class:`plasticore.config.ConfigError`) and ``to_dict() -> dict``. A TOML config with
``rule = "<rule>"`` puts these parameters in a ``[<rule>]`` table.
"""
