"""Training configuration: the typed schema and the built-in per-task YAML files beside this module."""

from __future__ import annotations

import pathlib

import yaml

from hapo.config.schema import (
    SECTIONS,
    AlgoConfig,
    Config,
    ConfigError,
    EnvConfig,
    ModelConfig,
    RunConfig,
    describe,
    merge,
)
from hapo.files import replaced_atomically

BUILTIN_DIR = pathlib.Path(__file__).resolve().parent


def builtin_names() -> list[str]:
    """Names of the YAML files shipped in hapo/config/, e.g. 'halfcheetah_2x3'."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def tuned_name(scenario: str, agent_conf: str | None, algo: str | None = None) -> str | None:
    """The built-in config tuned for a task and algorithm, if one ships, else None.

    HAPPO's are named scenario_conf (`ant_4x2`), other algorithms' scenario_conf_algo
    (`ant_4x2_hatrpo`): a config tuned for one algorithm is not used for another. Tasks
    without partitions (MPE) drop the conf: `simple_spread`, `simple_spread_mappo`.
    """
    algo = algo or AlgoConfig().name
    suffix = "" if algo == AlgoConfig().name else f"_{algo}"
    names = [f"{scenario.lower()}_{agent_conf}{suffix}"] if agent_conf is not None else []
    names.append(f"{scenario.lower()}{suffix}")
    return next((name for name in names if name in builtin_names()), None)


def resolve_path(name_or_path: str) -> pathlib.Path:
    """A built-in config name or a path to a YAML file."""
    path = pathlib.Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"config file {name_or_path!r} does not exist")
        return path
    if name_or_path in builtin_names():
        return BUILTIN_DIR / f"{name_or_path}.yaml"
    raise ConfigError(f"unknown config {name_or_path!r}: give a .yaml path or a built-in name: {', '.join(builtin_names())}")


def load(name_or_path: str, base: Config | None = None) -> Config:
    """`base` (default: the schema defaults) updated by a YAML file or a built-in config.

    A file may start from another config with a top-level `base: NAME_OR_FILE` (a built-in
    name or a path relative to the file), whose values it then overrides.
    """
    return _load(resolve_path(name_or_path), base or Config(), ())


def _load(path: pathlib.Path, base: Config, chain: tuple[pathlib.Path, ...]) -> Config:
    if path.resolve() in chain:
        raise ConfigError(f"config {path} is its own base: {' -> '.join(map(str, (*chain, path)))}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if isinstance(data, dict) and "base" in data:
        parent = data.pop("base")
        if not isinstance(parent, str):
            raise ConfigError(f"base in {path} must be a config name or file, got {parent!r}")
        relative = path.parent / parent
        parent_path = relative if relative.suffix in (".yaml", ".yml") and relative.is_file() else resolve_path(parent)
        base = _load(parent_path, base, (*chain, path.resolve()))
    return merge(base, data, source=str(path))


# Settings that do not change the numbers of a run: a resumed run may change them.
PRESENTATION_KEYS = frozenset({
    "run.num_env_steps", "run.progress", "run.tensorboard", "run.log_dir", "run.run_name", "run.video_interval",
    "run.video_steps",
})


def run_defining_differences(a: dict, b: dict) -> list[str]:
    """Sorted `section.key` names whose values differ between two config dicts (`Config.to_dict()`),
    ignoring PRESENTATION_KEYS: two runs whose configs differ nowhere else compute the same numbers."""
    keys = {f"{section}.{key}" for cfg in (a, b) for section, values in cfg.items() for key in values}
    return sorted(
        key for key in keys - PRESENTATION_KEYS
        if _get(a, key) != _get(b, key)
    )


def _get(config: dict, key: str) -> object:
    section, _, name = key.partition(".")
    return config.get(section, {}).get(name, _MISSING)


_MISSING = object()


def dump(config: Config) -> str:
    """The config as YAML text that `load` reads back to an equal config."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def save(config: Config, path: pathlib.Path) -> None:
    """Write `dump(config)` to `path` atomically: a kill leaves the old file or the new one."""
    with replaced_atomically(path, encoding="utf-8") as handle:
        handle.write(dump(config))


__all__ = [
    "SECTIONS", "AlgoConfig", "Config", "ConfigError", "EnvConfig", "ModelConfig", "RunConfig",
    "PRESENTATION_KEYS", "builtin_names", "describe", "dump", "load", "merge", "resolve_path", "run_defining_differences",
    "save", "tuned_name",
]
