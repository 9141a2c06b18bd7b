"""Recipes: YAML/JSON files whose keys are the training script's flags.

A flag on the command line overrides the recipe (`--config configs/nafnet_cpu.yaml --learning_rate
2e-4`); an unknown key, a value outside a flag's choices or a non-number for a number is an error
naming the file, the key and what is allowed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from .._extras import needs

__all__ = ["json_value", "optional_float", "optional_int", "load_config", "recipe_dict", "command_line"]


def json_value(text: str) -> Any:
    """A JSON value from the command line (`--generator_kwargs '{"width": 16}'`, `--blur null`)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {text!r} ({err.msg})") from err


def optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null") else float(text)


def optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "null") else int(text)


def load_config(path: str | os.PathLike, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Read a YAML/JSON recipe and check every key and choice against the parser's options."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        config = json.loads(text)
    elif path.suffix in (".yaml", ".yml"):
        with needs("train"):
            import yaml

        config = yaml.safe_load(text) or {}
    else:
        raise ValueError(f"--config {path}: unknown format {path.suffix!r}; allowed: .yaml, .yml, .json")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a recipe is a mapping of option names to values, got {type(config).__name__}")
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    for key, value in config.items():
        if key not in actions:
            raise ValueError(f"{path}: unknown key {key!r}; allowed keys are the flags of train_accelerate.py: "
                             f"{sorted(actions)}")
        action = actions[key]
        if action.choices is not None and value is not None and value not in action.choices:
            raise ValueError(f"{path}: {key}: {value!r} is not allowed; choose one of {list(action.choices)}")
        if action.type in (int, float) and action.nargs is None and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            raise ValueError(f"{path}: {key}: expected a number, got {value!r}")
    return config


def recipe_dict(args: argparse.Namespace) -> dict[str, Any]:
    """The resolved options (what the run actually used), JSON-serialisable."""
    return {k: v for k, v in sorted(vars(args).items())}


def command_line() -> str:
    """The command that started this run (for the model card and the run folder's lock)."""
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])
