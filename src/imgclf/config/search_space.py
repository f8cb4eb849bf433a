"""The search space of a hyper-parameter study: a small typed YAML file, checked before any trial.

    description: the head on cached bottlenecks
    objective: {metrics: metrics/evaluate.json, key: val.accuracy, direction: maximize}
    holdout:   {metrics: metrics/evaluate.json, key: test.accuracy}
    fixed:     {train.model: head}
    params:
      train.head.dropout:       {low: 0.1, high: 0.6}
      train.head.learning_rate: {low: 0.0001, high: 0.003, log: true}
      train.head.batch_size:    {choices: [128, 256, 512]}
      train.head.hidden_units:  {choices: [[256], [512], [512, 256]]}

A range of ints samples ints, a range with a float bound samples floats, `choices` samples one
value (lists allowed: Optuna stores each choice as its YAML text). A wrong key, a bad range, or a
value params.yaml's schema refuses is an error naming the key before any trial runs, not an
experiment that fails an hour in. The holdout metric is read only for the best trial, so the
search never looks at the test set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from imgclf.config.params import Checks, ParamsError, parse_params
from imgclf.config.schema import Strict, describe, flatten, merged, read_yaml, yaml_text
from imgclf.core.errors import UserError


class SearchSpaceError(UserError, ValueError):
    """The search-space file is missing, malformed, or proposes values params.yaml refuses."""


class Metric(Strict):
    metrics: str = Field("metrics/evaluate.json", min_length=1, description="JSON file the pipeline writes")
    key: str = Field(..., min_length=1, description="dotted path inside it, e.g. val.accuracy")


class Objective(Metric):
    direction: Literal["maximize", "minimize"] = "maximize"


class Dimension(Strict):
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = Field(None, gt=0)
    choices: list[Any] | None = Field(None, min_length=2)

    @model_validator(mode="after")
    def _one_kind(self) -> "Dimension":
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("give either choices or low/high (with optional log or step), not both")
            if len({yaml.safe_dump(c) for c in self.choices}) != len(self.choices):
                raise ValueError(f"choices must differ from each other, got {self.choices}")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a range needs both low and high (or give choices)")
        if isinstance(self.low, bool) or isinstance(self.high, bool):
            raise ValueError("low and high must be numbers")
        if not self.low < self.high:
            raise ValueError(f"low must be below high, got low {self.low} and high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined (Optuna samples one or the other)")
        return self

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(isinstance(v, int) for v in (self.low, self.high)) and \
            (self.step is None or isinstance(self.step, int))

    def suggest(self, trial, key: str) -> Any:
        """Ask an Optuna trial for this dimension's value (categorical: its YAML text)."""
        if self.choices is not None:
            return trial.suggest_categorical(key, [yaml_text(c) for c in self.choices])
        if self.is_int:
            return trial.suggest_int(key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(key, float(self.low), float(self.high), log=self.log,
                                   step=None if self.step is None else float(self.step))

    def corners(self) -> list[Any]:
        """Values that must all be valid params: both ends of a range, or every choice."""
        if self.choices is not None:
            return list(self.choices)
        return [self.low, self.high] if self.is_int else [float(self.low), float(self.high)]


class SearchSpace(Strict):
    description: str = ""
    objective: Objective = Objective(key="val.accuracy")
    holdout: Metric | None = Metric(key="test.accuracy")
    fixed: dict[str, Any] = Field(default_factory=dict, description="overrides every trial runs with")
    params: dict[str, Dimension] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _disjoint(self) -> "SearchSpace":
        both = sorted(set(self.fixed) & set(self.params))
        if both:
            raise ValueError(f"{', '.join(both)}: both fixed and searched; keep one")
        return self


def decode(space: SearchSpace, suggested: dict[str, Any]) -> dict[str, Any]:
    """Optuna's values -> params values (categorical YAML texts back to lists or numbers)."""
    out = {}
    for key, value in suggested.items():
        out[key] = yaml.safe_load(value) if space.params[key].choices is not None else value
    return out


def load_space(path: Path | str, params_path: Path | str = "params.yaml", checks: Checks | None = None) -> SearchSpace:
    """Read and check a search space, including that every value it can propose is valid in params.yaml."""
    path = Path(path)
    raw = read_yaml(path, SearchSpaceError)
    if not isinstance(raw, dict):
        raise SearchSpaceError(f"{path}: expected a mapping with params (and optionally objective, holdout, fixed)")
    raw = {**raw, "fixed": flatten(raw.get("fixed") or {})} if isinstance(raw.get("fixed") or {}, dict) else raw
    try:
        space = SearchSpace.model_validate(raw)
    except ValidationError as err:
        raise SearchSpaceError(describe(err, f"{path}: {err.error_count()} problem(s) in the search space:",
                                        "imgclf/config/search_space.py")) from None
    check_against_params(space, path, Path(params_path), checks)
    return space


def check_against_params(space: SearchSpace, path: Path, params_path: Path, checks: Checks | None = None) -> None:
    """Each searched value, with the others at their first corner, must pass params.yaml's schema
    (and `checks`: the tuner hands in every check the stages make)."""
    base = read_yaml(params_path, SearchSpaceError)
    first = {key: dim.corners()[0] for key, dim in space.params.items()}
    problems = []
    for key, dim in space.params.items():
        for value in dim.corners():
            try:
                parse_params(merged(base, {**space.fixed, **first, key: value}, ParamsError), params_path, checks)
            except ParamsError as err:
                detail = "; ".join(line.strip() for line in str(err).splitlines()[1:]) or str(err)
                problems.append(f"  {key} = {value!r}: {detail}")
                break
    if problems:
        raise SearchSpaceError(f"{path}: values params.yaml's schema refuses:\n" + "\n".join(problems))
