"""What console entry points share: process-wide settings, hydra base configs from dataclasses, and one
way to report a user error (one line, exit status 2)."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def set_threads(num_threads: int | None) -> None:
    """torch's intra-op threads for this process (entry points only; the library never sets them)."""
    if num_threads:
        import torch  # here, not at the top: collectors use this module without torch (seconds of start-up)

        torch.set_num_threads(int(num_threads))


def dataclass_defaults(cls) -> dict:
    """Default values of a (nested) config dataclass as plain data, without running ``__post_init__``.

    Registered as a hydra base config, it makes every field overridable from the command line while the
    YAML files keep only what they change.
    """
    out = {}
    for spec in dataclasses.fields(cls):
        if spec.default_factory is not dataclasses.MISSING:
            value = spec.default_factory()
            value = dataclass_defaults(type(value)) if dataclasses.is_dataclass(value) else value
        else:
            value = spec.default
        out[spec.name] = list(value) if isinstance(value, tuple) else value
    return out


def register_base_config(name: str, cls) -> None:
    """Store ``cls``'s defaults in hydra's ConfigStore under ``name`` (entry points only)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=name, node=dataclass_defaults(cls))


# Exceptions that mean "the input is wrong" (a config value, a path, a file's content): every library error
# the project raises for bad input is one of these, with a message that names the key or file and the fix.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)
TRACEBACK_ENV = "DRIFTING_TRACEBACK"  # set to 1 to see the full traceback of a user error
USER_ERROR_EXIT = 2


def report_user_errors(task: Callable[P, R]) -> Callable[P, R]:
    """Wrap an entry point's body: a user error prints one line, `error: <message>`, on stderr and exits
    with status 2 (no traceback unless DRIFTING_TRACEBACK=1). Other exceptions (bugs) keep their traceback.

    Goes inside `@hydra.main` so that hydra never sees the exception (it would print its own traceback)."""

    @functools.wraps(task)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return task(*args, **kwargs)
        except USER_ERRORS as error:
            if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
                raise
            message = " ".join(str(error).split()) or type(error).__name__  # one line
            print(f"error: {message}", file=sys.stderr)
            raise SystemExit(USER_ERROR_EXIT) from None

    return run


def parse_key_values(config_class: type[R], argv: list[str]) -> R:
    """`key=value` command-line settings (hydra's style, values in YAML syntax: `policies=[a,b]`) over a
    config dataclass's defaults, for entry points that need no config files. An unknown key or a value of
    the wrong type is a ValueError naming the key and the known ones."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    defaults = dataclass_defaults(config_class)
    malformed = [arg for arg in argv if "=" not in arg or arg.startswith("-")]
    if malformed:
        raise ValueError(f"expected key=value settings, got {malformed}; known keys: {sorted(defaults)}")
    settings = OmegaConf.from_dotlist(list(argv))
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; known keys: {sorted(defaults)}")
    try:  # the structured merge checks each value against the field's type
        merged = OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(config_class), settings))
    except OmegaConfBaseException as error:
        raise ValueError(f"{str(error).splitlines()[0]} (setting {error.full_key}=)") from error
    tuples = {spec.name for spec in dataclasses.fields(config_class) if isinstance(spec.default, tuple)}
    return config_class(**{k: tuple(v) if k in tuples else v for k, v in merged.items()})


def check_overrides(config_module: str, config_name: str, argv: list[str] | None = None) -> None:
    """Compose a hydra config with the command line's `key=value` overrides before hydra runs, so that a typo
    (`train.lrr=1`) or a bad value is a one-line user error (ValueError) instead of hydra's report. Command
    lines with hydra's own flags (`--help`, `--cfg`, `-m`, ...) are left to hydra."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(sys.argv[1:] if argv is None else argv)
    if any(arg.startswith("-") for arg in overrides):
        return
    try:
        with initialize_config_module(config_module, version_base=None):
            compose(config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as error:
        raise ValueError(" ".join(str(error).split())) from None
