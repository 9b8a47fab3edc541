"""One place that names every environment hapo trains on: the built-in families and yours.

    hapo.envs.register("my_task", make_my_task)      # then env.scenario: my_task
    env.entry_point: "my_package.tasks:make_my_task" # the same, from a YAML config, no code

A factory is one of two kinds, told apart by its signature:
- with a `num_envs` parameter: a batched env. It is called once as
  factory(num_envs=N, seed=s, **options) and returns an env of hapo's batched protocol
  (docs/env_api.md), which it steps itself;
- otherwise: a PettingZoo env. It is called as factory(**options) for each of the N
  copies and returns a `pettingzoo.ParallelEnv`, which hapo checks once and steps as N
  copies (`hapo.envs.parallel`), in this process or in worker processes.
`options` are the config's `env.options`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hapo.envs import mpe, smax, toy
from hapo.envs.parallel import ParallelEnvVector
from hapo.envs.partitions import scenario_names

# The attributes and methods the trainer uses of a batched env (docs/env_api.md).
PROTOCOL = (
    "num_envs", "num_agents", "agents", "obs_sizes", "action_sizes", "state_size", "action_low", "action_high",
    "action_kind", "max_episode_steps", "reset", "step", "snapshot", "restore", "close",
)


def action_kinds(env: Any) -> tuple[str, ...]:
    """Each agent's action kind, "continuous" or "discrete": the env's `action_kinds` when its
    team mixes them (`action_kind == "mixed"`), else its one `action_kind` for every agent."""
    if env.action_kind == "mixed":
        return tuple(env.action_kinds)
    return (env.action_kind,) * env.num_agents


@dataclass(frozen=True)
class Registration:
    factory: Callable[..., Any]
    batched: bool  # factory(num_envs=..., seed=..., **options) -> batched env; else factory(**options) -> ParallelEnv


_REGISTRY: dict[str, Registration] = {}


def partitioned_names() -> list[str]:
    """The scenarios whose agents come from `env.agent_conf`: MuJoCo (`hapo.envs.make`), SMAX
    (the map) and toy."""
    return [*scenario_names(), smax.SCENARIO, *toy.SCENARIOS]


def builtin_names() -> list[str]:
    """The scenarios hapo ships: MuJoCo, SMAX, toy, and PettingZoo's MPE (`hapo.envs.mpe`)."""
    return [*partitioned_names(), *mpe.TASKS]


def register(name: str, factory: Callable[..., Any], *, overwrite: bool = False) -> None:
    """Make `name` a scenario the trainer can use (`env.scenario: name`); see the module doc for `factory`.

    Raises ValueError for an empty name, a built-in scenario's name, or a name registered
    before (unless `overwrite`), and TypeError if factory is not callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"an environment name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"the factory of {name!r} must be callable, got {factory!r}")
    if name in builtin_names():
        raise ValueError(f"{name!r} is a built-in scenario of hapo; register your environment under another name")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"an environment named {name!r} is registered already (pass overwrite=True to replace it)")
    _REGISTRY[name] = Registration(factory, _is_batched(factory))


def unregister(name: str) -> None:
    """Forget a registered environment (KeyError if there is none of that name)."""
    if name not in _REGISTRY:
        raise KeyError(f"no environment named {name!r} is registered; registered: {', '.join(_REGISTRY) or 'none'}")
    del _REGISTRY[name]


def registered() -> list[str]:
    """Every scenario name the trainer accepts: built-in, then registered."""
    return [*builtin_names(), *_REGISTRY]


def _is_batched(factory: Callable[..., Any]) -> bool:
    try:
        return "num_envs" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature: called per copy
        return False


def load_entry_point(text: str) -> Callable[..., Any]:
    """The callable named by 'package.module:attribute' (attribute may be dotted)."""
    module_name, sep, attribute = text.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"env.entry_point must look like 'package.module:function', got {text!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"env.entry_point {text!r}: cannot import {module_name!r} ({err})") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"env.entry_point {text!r}: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"env.entry_point {text!r} is not callable (got {type(target).__name__})")
    return target


def lookup(scenario: str, entry_point: str = "") -> Registration | None:
    """The registration an env config names (its entry point, a registered or an MPE scenario),
    or None for a MuJoCo or toy scenario; ValueError for a name that is none of these."""
    if entry_point:
        factory = load_entry_point(entry_point)
        return Registration(factory, _is_batched(factory))
    if scenario in _REGISTRY:
        return _REGISTRY[scenario]
    if scenario in mpe.TASKS:
        return Registration(functools.partial(mpe.make, scenario), batched=False)
    if scenario in partitioned_names():
        return None
    raise ValueError(f"unknown scenario {scenario!r}, expected one of: {', '.join(registered())} "
                     "(or a name given to hapo.envs.register, or env.entry_point)")


def make_registered(registration: Registration, *, num_envs: int, seed: int, options: dict | None = None, vector: str = "sync", processes: int = 2):
    """The batched env of a registration: the factory's own, or N copies of its ParallelEnv."""
    options = dict(options or {})
    if registration.batched:
        env = registration.factory(num_envs=num_envs, seed=seed, **options)
        missing = [name for name in PROTOCOL if not hasattr(env, name)]
        if missing:
            raise ValueError(f"{registration.factory.__qualname__} has a num_envs parameter, so it must return a batched env "
                             f"(docs/env_api.md), but what it returned lacks {', '.join(missing)}")
        return env
    return ParallelEnvVector(functools.partial(registration.factory, **options), num_envs, seed, vector=vector, processes=processes)
