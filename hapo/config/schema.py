"""The typed training configuration: sections of fields, each with its help text and its check.

A config is built from the dataclass defaults (the HARL-tuned MAMuJoCo settings),
then a YAML file (one of `hapo/config/*.yaml` or a user's), then `section.key=value`
overrides. Every key and value is checked here; errors name the bad key or value and
list what is valid.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config key or value that the schema does not accept."""


def _opt(default, help: str, check: tuple[Callable[[Any], bool], str] | None = None, **kwargs):
    metadata = {"help": help}
    if check is not None:
        metadata["check"] = check
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata, **kwargs)
    return field(default=default, metadata=metadata, **kwargs)


POSITIVE = (lambda v: v > 0, "> 0")
NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
UNIT = (lambda v: 0 <= v <= 1, "in [0, 1]")
OPEN_UNIT = (lambda v: 0 < v < 1, "in (0, 1)")
POSITIVE_LIST = (lambda v: len(v) > 0 and all(0 < x < 2**31 for x in v), "a non-empty list of positive ints below 2**31")
# Integer bounds: counts go to C++ and torch as 32-bit ints; numpy's global seed takes 32 bits.
COUNT = (lambda v: 0 < v < 2**31, "in [1, 2**31)")
COUNT_OR_ZERO = (lambda v: 0 <= v < 2**31, "in [0, 2**31)")
SEED = (lambda v: 0 <= v < 2**32, "in [0, 2**32)")
STEPS = (lambda v: 0 < v < 2**63, "in [1, 2**63)")


def one_of(*choices: str):
    return (lambda v: v in choices, f"one of {', '.join(choices)}")


@dataclass
class EnvConfig:
    """The environment: a scenario of `hapo.envs.make`, a toy scenario of `hapo.envs.toy`, or your own (docs/own_env.md)."""

    scenario: str = _opt("HalfCheetah", "Task name: a MuJoCo scenario of hapo.envs.make (HalfCheetah, Ant, ...), SMAX (JaxMARL's SMAC-style battles), an MPE task (simple_spread, simple_reference, simple_speaker_listener), a toy scenario (ToyReach, ToySplit, ToySplitMasked), or a name given to hapo.envs.register (hapo.envs.registered() lists them all).")
    agent_conf: str = _opt("6x1", "Agent partition, e.g. '6x1' or '2x3' for MuJoCo tasks; the map for SMAX (e.g. '3s5z'); see hapo.envs.toy for the toy ones. MPE and your own environments take none.")
    obs_mode: str = _opt("local", "What an agent observes: 'local' (MaMuJoCo's partial view, joints up to agent_obsk hops away) or 'global' (the single-agent task's full observation plus a one-hot agent id: the paper's setting).", one_of("local", "global"))
    agent_obsk: int = _opt(1, "Observation depth k of MaMuJoCo: agents see joints up to k hops away (obs_mode local).", COUNT_OR_ZERO)
    clip_actions: bool = _opt(True, "Clamp Gaussian actions to the action range before the env (true), or send the raw sample, which the control cost sees and MuJoCo clamps (false: the authors' code).")
    num_envs: int = _opt(20, "Parallel training environments.", COUNT)
    num_threads: int = _opt(2, "Threads of the C++ environment pool, or worker processes of env.vector 'async' (results do not depend on it).", COUNT)
    entry_point: str = _opt("", "Your own environment, with no code: a factory 'package.module:function' (docs/own_env.md); env.scenario then only names the run. Empty: env.scenario names a built-in or registered env.")
    options: dict[str, Any] = _opt({}, "Keyword arguments of your environment's factory (env.entry_point or hapo.envs.register), e.g. {N: 3}.")
    vector: str = _opt("sync", "How the copies of a PettingZoo env are stepped: 'sync' (in this process) or 'async' (in env.num_threads worker processes, for expensive envs); results do not depend on it.", one_of("sync", "async"))


@dataclass
class AlgoConfig:
    """The learning algorithm and its hyperparameters."""

    name: str = _opt("happo", "Algorithm (hapo.algos.ALGORITHMS): happo, hatrpo (sequential updates weighted by the compound factor, one critic V(state)); mappo (simultaneous PPO updates, one critic V(state)); ippo (simultaneous PPO updates, a critic V_i(o_i) per agent on its own observation); haa2c (sequential unclipped policy-gradient steps weighted by the compound factor, one critic V(state)); off-policy, with deterministic actors, a replay buffer and a centralised Q(state, joint action): maddpg, matd3 (simultaneous actor updates against the other agents' buffer actions; matd3 with twin critics, target smoothing and delayed actor updates), haddpg, hatd3 (sequential actor updates, each against the new actions of the agents updated before it).")
    rollout_length: int = _opt(200, "On-policy: environment steps per environment per iteration (batch = num_envs * rollout_length).", COUNT)
    ppo_epochs: int = _opt(5, "Passes over the batch per agent update (HAPPO, MAPPO, IPPO).", COUNT)
    a2c_epochs: int = _opt(5, "HAA2C: passes over the batch per agent update (HARL's a2c_epoch).", COUNT)
    num_minibatches: int = _opt(1, "Minibatches per epoch of an agent update.", COUNT)
    clip: float = _opt(0.2, "PPO clip range epsilon of the ratio (also clips the value loss when value_clip).", POSITIVE)
    entropy_coef: float = _opt(0.0, "Weight of the entropy bonus in the actor loss.", NON_NEGATIVE)
    actor_lr: float = _opt(5e-4, "Adam learning rate of every actor.", POSITIVE)
    critic_lr: float = _opt(5e-4, "Adam learning rate of the critic.", POSITIVE)
    lr_decay: str = _opt("none", "Learning-rate schedule of actors and critic: 'none' or 'linear' (iteration k of K uses lr * (1 - k / K)).", one_of("none", "linear"))
    adam_eps: float = _opt(1e-5, "Adam epsilon of actors and critic.", POSITIVE)
    max_grad_norm: float = _opt(10.0, "Gradient-norm clip of actors and critic (on-policy algorithms; the off-policy ones do not clip, as HARL's).", POSITIVE)
    gamma: float = _opt(0.99, "Discount factor.", UNIT)
    gae_lambda: float = _opt(0.95, "GAE lambda.", UNIT)
    critic_epochs: int = _opt(5, "Passes over the batch per critic update.", COUNT)
    critic_num_minibatches: int = _opt(1, "Minibatches per critic epoch.", COUNT)
    huber_delta: float = _opt(10.0, "Huber loss threshold of the value loss.", POSITIVE)
    value_clip: bool = _opt(True, "Clip the value update around the old values by `clip`, as in MAPPO/HARL.")
    value_normalizer: bool = _opt(True, "Regress the critic on returns normalised by a running mean/std.")
    value_norm_stats: str = _opt("exact", "Statistics of the value normaliser: 'exact' (mean and variance of every return seen, updated once per iteration) or 'moving_average' (HARL's: a debiased moving average with beta 0.99999 and the variance floored at 0.01, updated with every critic minibatch's returns).", one_of("exact", "moving_average"))
    advantage_norm: bool = _opt(True, "Normalise advantages over the batch to zero mean, unit std.")
    fixed_order: bool = _opt(False, "Update agents in index order every iteration (off-policy: every actor update) instead of a random permutation (simultaneous updates: it only orders the minibatch draws).")
    share_param: bool = _opt(False, "Agents with identical observation and action spaces share one actor (MAPPO's tuned configs; an ablation for the heterogeneous-agent algorithms). Simultaneous updates update a shared actor once, on all its agents' rows. On-policy algorithms only.")
    kl_threshold: float = _opt(0.01, "HATRPO: trust-region size delta, the bound on an agent's mean KL(old || new) per step.", POSITIVE)
    cg_iterations: int = _opt(10, "HATRPO: most conjugate-gradient iterations for the natural-gradient direction.", COUNT)
    cg_damping: float = _opt(0.1, "HATRPO: damping added to the Fisher matrix (F + damping I) in conjugate gradient.", NON_NEGATIVE)
    cg_tolerance: float = _opt(1e-10, "HATRPO: conjugate gradient stops once the residual norm is at most this.", NON_NEGATIVE)
    fisher: str = _opt("explicit", "HATRPO: how Fisher-vector products are computed: 'explicit' (Jacobian products on one forward pass, in C++: hapo.MlpFisher) or 'autograd' (double backward through the mean KL: the general path and the reference; several times slower, equal up to rounding).", one_of("explicit", "autograd"))
    backtrack_coeff: float = _opt(0.8, "HATRPO: line-search factor; try the full step times backtrack_coeff^k, k = 0, 1, ...", OPEN_UNIT)
    ls_steps: int = _opt(10, "HATRPO: line-search candidates tried before the step is rejected (parameters kept).", COUNT)
    accept_ratio: float = _opt(0.5, "HATRPO: accept a step whose surrogate gain is at least this fraction of the linear prediction g . step.", UNIT)
    # The off-policy family (MADDPG, MATD3, HADDPG, HATD3), named as in HARL's configs.
    train_interval: int = _opt(50, "Off-policy: steps of every env per iteration (an iteration = env.num_envs * train_interval env steps, then its updates).", COUNT)
    update_per_train: float = _opt(1.0, "Off-policy: updates per env step of the vector env: an iteration makes round(update_per_train * train_interval) updates (each one critic step on a sampled batch, and the actors' step when due).", POSITIVE)
    buffer_size: int = _opt(1_000_000, "Off-policy: replay buffer capacity in transitions (it keeps the last buffer_size // env.num_envs steps of every env).", COUNT)
    batch_size: int = _opt(1000, "Off-policy: transitions sampled (uniformly, with replacement) from the replay buffer per update.", COUNT)
    warmup_steps: int = _opt(10_000, "Off-policy: the first warmup_steps env steps take uniform random actions in the action box, and updates wait until they are done.", COUNT_OR_ZERO)
    n_step: int = _opt(1, "Off-policy: n-step returns: the critic's target sums up to n_step rewards and bootstraps from the state after the last (no bootstrap after a termination; a time-limit cut or the latest step collected ends the window early and bootstraps).", COUNT)
    polyak: float = _opt(0.005, "Off-policy: target networks move by target = (1 - polyak) * target + polyak * online after each actor update.", UNIT)
    expl_noise: float = _opt(0.1, "Off-policy: std of the Gaussian exploration noise added to the actions, as a fraction of half the action range (the sum is clamped to the action box).", NON_NEGATIVE)
    policy_noise: float = _opt(0.2, "MATD3, HATD3: std of the target policy smoothing noise added to the target actors' actions, as a fraction of half the action range.", NON_NEGATIVE)
    noise_clip: float = _opt(0.5, "MATD3, HATD3: the smoothing noise is clipped to +-noise_clip times half the action range (then the action to the box).", NON_NEGATIVE)
    policy_freq: int = _opt(2, "MATD3, HATD3: the actors (and all target networks) are updated every policy_freq critic updates (MADDPG and HADDPG: every update).", COUNT)


@dataclass
class ModelConfig:
    """Actor and critic networks."""

    hidden_sizes: list[int] = _opt([128, 128, 128], "Hidden layer widths of actors and critic.", POSITIVE_LIST)
    activation: str = _opt("relu", "Hidden activation.", one_of("relu", "tanh"))
    layernorm: str = _opt("input", "LayerNorm placement in actors and critic: 'none', 'input' (on the inputs: HARL's feature normalisation) or 'every_layer' (also after every hidden activation, as HARL's MLP).", one_of("none", "input", "every_layer"))
    std: str = _opt("exp", "Gaussian std parametrisation (learned, state-independent): 'exp' (std = exp(theta), theta starting at log initial_std) or 'sigmoid' (std = 0.5 * sigmoid(theta), theta starting at 1: 0.37, never above 0.5, as the authors' code).", one_of("exp", "sigmoid"))
    initial_std: float = _opt(0.5, "Initial standard deviation of Gaussian actors with std 'exp'.", POSITIVE)
    output_gain: float = _opt(0.01, "Orthogonal-init gain of the actors' output layer (hidden layers use sqrt(2)).", POSITIVE)


@dataclass
class RunConfig:
    """Seeding, length, evaluation, logging and checkpoints of a run."""

    seed: int = _opt(1, "Seed of everything: environments, networks, sampling, agent order.", SEED)
    num_env_steps: int = _opt(10_000_000, "Total environment steps (steps of one environment, summed over environments).", STEPS)
    eval_interval: int = _opt(25, "Evaluate every this many iterations, and after the last (0: never).", COUNT_OR_ZERO)
    eval_episodes: int = _opt(10, "Deterministic episodes per evaluation.", COUNT)
    eval_num_envs: int = _opt(10, "Parallel evaluation environments (a separate instance).", COUNT)
    checkpoint_interval: int = _opt(50, "Save a checkpoint every this many iterations, and after the last (0: only after the last).", COUNT_OR_ZERO)
    checkpoint_buffer: bool = _opt(True, "Off-policy: checkpoints hold the replay buffer, so a resumed run continues exactly (about its algo.buffer_size transitions' bytes: see the README); false keeps them small, and a resumed run starts over with an empty buffer.")
    log_dir: str = _opt("runs", "Parent folder of run folders.")
    run_name: str = _opt("", "Run folder name under log_dir (empty: scenario-agent_conf-algo-seed).")
    torch_threads: int = _opt(1, "torch.set_num_threads while collecting and evaluating (results are reproducible for fixed thread counts).", COUNT)
    update_torch_threads: int = _opt(2, "torch.set_num_threads during the update, whose batches are large enough to gain from more threads (the env threads are idle then).", COUNT)
    update_matmul_precision: str = _opt(
        "ieee",
        "Precision of float32 matrix products during the update. ieee: exact float32. bf16: oneDNN rounds their inputs to "
        "bfloat16 and sums in float32, which CPUs with AMX or AVX-512 BF16 do about 3x faster (off-policy runs gain about "
        "1.3x, on-policy ones less: see the README); results differ from ieee's, and are as deterministic. Collection and "
        "evaluation are not affected.",
        one_of("ieee", "bf16"),
    )
    progress: bool = _opt(True, "Show a progress bar.")
    tensorboard: bool = _opt(True, "Write TensorBoard scalars beside the CSV.")
    video_interval: int = _opt(0, "Film one deterministic episode every this many iterations, and after the last (0: never), to videos/iterationN.mp4 in the run folder and to TensorBoard as a GIF (MuJoCo tasks).", COUNT_OR_ZERO)
    video_steps: int = _opt(200, "Most steps of a filmed episode.", COUNT)


SECTIONS: dict[str, type] = {"env": EnvConfig, "algo": AlgoConfig, "model": ModelConfig, "run": RunConfig}


@dataclass
class Config:
    """A complete training configuration."""

    env: EnvConfig = field(default_factory=EnvConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """Defaults updated by `data` ({section: {key: value}}), checked."""
        return merge(cls(), data)

    def with_overrides(self, assignments: list[str]) -> Config:
        """Apply 'section.key=value' strings (values parsed as YAML)."""
        return merge(self, parse_assignments(assignments))


def merge(config: Config, data: Mapping[str, Any], source: str = "config") -> Config:
    """A copy of `config` with the values of `data` ({section: {key: value}}) checked and set."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} must be a mapping of sections ({', '.join(SECTIONS)}), got {type(data).__name__}")
    sections = {name: dataclasses.asdict(getattr(config, name)) for name in SECTIONS}
    for name, values in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown section {name!r} in {source}; valid sections: {', '.join(SECTIONS)}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"section {name!r} in {source} must be a mapping of keys, got {values!r}")
        fields = {f.name: f for f in dataclasses.fields(SECTIONS[name])}
        hints = typing.get_type_hints(SECTIONS[name])
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(f"unknown key {name}.{key} in {source}; valid keys of {name}: {', '.join(fields)}")
            sections[name][key] = _coerce(f"{name}.{key}", value, hints[key], fields[key].metadata.get("check"))
    merged = Config(**{name: SECTIONS[name](**values) for name, values in sections.items()})
    from hapo.algos import ALGORITHMS

    if merged.algo.name not in ALGORITHMS:
        raise ConfigError(f"algo.name must be one of {', '.join(ALGORITHMS)}, got {merged.algo.name!r}")
    return merged


def parse_assignments(assignments: list[str]) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = {}
    for text in assignments:
        key, sep, raw = text.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"override {text!r} must look like section.key=value, e.g. algo.clip=0.1; sections: {', '.join(SECTIONS)}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override {text!r}: the value is not valid YAML ({err})") from None
        data.setdefault(section, {})[name] = value
    return data


def _coerce(key: str, value: Any, kind: Any, check) -> Any:
    converted = _convert(key, value, kind)
    if check is not None and not check[0](converted):
        raise ConfigError(f"{key} must be {check[1]}, got {value!r}")
    return converted


def _convert(key: str, value: Any, kind: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{key} must be a bool (true or false), got {value!r}")
    if kind is int:
        number = _number(key, value, "an int")
        if isinstance(number, float) and not number.is_integer():
            raise ConfigError(f"{key} must be an int, got {value!r}")
        return int(number)
    if kind is float:
        number = _number(key, value, "a number")
        if not math.isfinite(number):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return float(number)
    if kind is str:
        # YAML reads agent_conf: 2 as an int; a name made of digits is still a name.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    if typing.get_origin(kind) is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{key} must be a mapping of names to values like {{N: 3}}, got {value!r}")
        return dict(value)
    if typing.get_origin(kind) is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list like [128, 128], got {value!r}")
        (item,) = typing.get_args(kind)
        return [_convert(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    raise TypeError(f"config field {key} has an unsupported type {kind}")


def _number(key: str, value: Any, what: str) -> float | int:
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be {what}, got {value!r}")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        # YAML 1.1 reads '1e6' as a string; accept it as the number a user meant.
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    raise ConfigError(f"{key} must be {what}, got {value!r}")


def describe() -> str:
    """Every key with its default and help, for `hapo-train --help`."""
    lines = []
    defaults = Config()
    for name, section in SECTIONS.items():
        lines.append(f"{name}: {section.__doc__}")
        for f in dataclasses.fields(section):
            lines.append(f"  {name}.{f.name} = {getattr(getattr(defaults, name), f.name)!r}: {f.metadata['help']}")
    return "\n".join(lines)
