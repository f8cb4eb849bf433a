"""The one base of every error a user can fix: bad params, bad data, an unreachable source, a
full disk. Stages and imgclf-predict print such an error as one line and exit 2; anything else
is a bug and keeps its traceback, so it is never mistaken for a data problem."""


class UserError(Exception):
    pass


class ConfigError(UserError, ValueError):
    """A parameter value that only turns out wrong at run time (a layer name, a grid size)."""
