"""What every config file of the project shares (params.yaml, presets, search spaces): strict
pydantic models, one way to say what is wrong, YAML read with the file named, dotted keys.

A message names the file, then each key with its value and the rule it breaks, so a typo in any of
them reads the same and fails before any work."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    # extra="forbid": an unknown key is a typo until proven otherwise.
    # strict=True: "four" or 2.5 is never silently coerced to an int.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def describe(err: ValidationError, heading: str, schema: str) -> str:
    """heading, then one line per problem; `schema` names where the valid keys are written."""
    lines = [heading]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if not key:            # a rule across sections: its message names the keys, the whole file is no help
            lines.append(f"  {e['msg'].removeprefix('Value error, ')}")
        elif e["type"] == "missing":  # its "input" is the enclosing section, not a value of the key
            lines.append(f"  {key}: Field required; the key is missing")
        elif e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (value {e['input']!r}); check the spelling against {schema}")
        else:
            lines.append(f"  {key} = {e.get('input')!r}: {e['msg']}")
    return "\n".join(lines)


def read_yaml(path: Path, error: type[Exception]) -> Any:
    """A YAML file's content; a missing file or bad YAML is `error` naming the file."""
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: not found") from None
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {err}") from None


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"cnn": {"epochs": 12}}} -> {"train.cnn.epochs": 12}; lists stay values."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def merged(base: dict, overrides: dict[str, Any], error: type[Exception]) -> dict:
    """base with dotted-key overrides set (as `dvc exp run -S` sets them); base is not changed."""
    out = copy.deepcopy(base)
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise error(f"{dotted}: {part} is not a section of params.yaml")
        node[leaf] = value
    return out


def yaml_text(value: Any) -> str:
    """A value in YAML flow style on one line, as `dvc exp run -S key=value` parses it."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()
