"""A preset: a committed YAML file in presets/ of parameter overrides with a description (like
lightning-hydra-template's experiment configs); experiments.run_preset runs one as a DVC experiment."""

from __future__ import annotations

from pathlib import Path

from imgclf.config.schema import read_yaml
from imgclf.core.errors import UserError

PRESETS = Path("presets")


class PresetError(UserError, ValueError):
    pass


def load_preset(name: str, folder: Path = PRESETS) -> dict:
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise PresetError(f"{path}: no such preset (known: {', '.join(known) or 'none'})")
    data = read_yaml(path, PresetError) or {}
    if not isinstance(data, dict) or set(data) - {"description", "params"}:
        raise PresetError(f"{path}: expected the keys description and params, got {sorted(data)}")
    if not isinstance(data.get("params", {}), dict):
        raise PresetError(f"{path}: params must be a mapping of parameter overrides")
    return data
