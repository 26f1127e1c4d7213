"""The configuration file: TOML in, a validated `hotstandby.core.cluster.Cluster` out.

`load` returns a Cluster or raises ConfigError (file, line, key path, expected, found);
nothing runs on a bad file. `hotstandby.config.budget` holds the timing budget
(`takeover_budget`) and the safety rules (`violations`, `risks`).
"""

from hotstandby.config.budget import Budget, Part, Risk, risks, takeover_budget, violations
from hotstandby.config.errors import ConfigError, KeyPath, Problem, Violation, format_key
from hotstandby.config.loader import load, load_bytes, load_text, read_file

__all__ = [
    "Budget",
    "ConfigError",
    "KeyPath",
    "Part",
    "Problem",
    "Risk",
    "Violation",
    "format_key",
    "load",
    "load_bytes",
    "load_text",
    "read_file",
    "risks",
    "takeover_budget",
    "violations",
]
