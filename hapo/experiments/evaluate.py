"""`hapo-eval RUN_DIR`: play a trained team on fresh environments and report its returns;
optionally film one episode of a MuJoCo task to an MP4.

Python API::

    from hapo.experiments.evaluate import evaluate_policy, record_video
    from hapo.train import make_env

    env = make_env(cfg.env, num_envs=10, seed=0)
    episodes = evaluate_policy(policy, env, 20, clip_actions=cfg.env.clip_actions)
    episodes.returns, episodes.lengths, episodes.summary()
    record_video(policy, cfg.env, "team.mp4", seed=0, max_steps=300)   # -> frames written

`policy` is a `hapo.models.JointPolicy` (e.g. `Trainer.policy()`). Rendering is offscreen
with `mujoco.Renderer` on a headless OpenGL: MUJOCO_GL if set, else EGL, else OSMesa.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Sequence

import imageio.v2 as imageio
import mujoco
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from hapo.config import EnvConfig
from hapo.envs.env import load_model
from hapo.envs.partitions import get_scenario, scenario_names
from hapo.models import JointPolicy

# hapo.train is imported where it is used: the trainer is to call record_video, and an import
# at the top would make the two modules import each other.

HEADLESS_GL = ("egl", "osmesa")
TRACKING_CAMERA = -1
DEFAULT_WIDTH, DEFAULT_HEIGHT = 640, 480


class RenderError(RuntimeError):
    """Offscreen rendering is impossible on this machine (no working OpenGL backend)."""


# -- playing episodes ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Episodes:
    """Episodes in the order of `evaluate_policy`'s rounds, and of the envs within a round."""

    returns: list[float]
    lengths: list[int]

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean, std (population), min and max of the returns and of the lengths."""
        return {name: _stats(values) for name, values in (("return", self.returns), ("length", self.lengths))}


def _stats(values: Sequence[float]) -> dict[str, float]:
    x = np.asarray(values, dtype=np.float64)
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max())}


def env_actions(env, actions: list[torch.Tensor], clip_actions: bool) -> list[np.ndarray]:
    """The policy's actions as the trainer sends them to `env`: continuous ones clamped to
    [action_low, action_high] when `clip_actions` (env.clip_actions), else as sampled."""
    if env.action_kind == "continuous" and clip_actions:
        return [np.clip(a.numpy(), low, high) for a, low, high in zip(actions, env.action_low, env.action_high)]
    return [a.numpy() for a in actions]


def _policy_step(policy: JointPolicy, env, obs, info: dict, *, clip_actions: bool, deterministic: bool, generator: torch.Generator | None):
    """One env.step with the policy's actions for `obs`: (obs, state, reward, terminated, truncated, info)."""
    actions = policy.act(obs, deterministic=deterministic, generator=generator, action_masks=info.get("action_mask"))
    return env.step(env_actions(env, actions, clip_actions))


@torch.no_grad()
def evaluate_policy(
    policy: JointPolicy,
    env,
    episodes: int,
    *,
    clip_actions: bool,
    deterministic: bool = True,
    generator: torch.Generator | None = None,
    max_steps: int | None = None,
) -> Episodes:
    """Play `episodes` episodes, each from a reset, and return them.

    In rounds: `env.reset()`, then steps until each env has ended its first episode or played
    `max_steps` steps (then the episode is cut there). Each env gives one episode a round
    (the last round counts envs 0, 1, ... only), so episodes that end early are not
    favoured over long ones, as taking the first ones to finish would.

    Args:
      policy: acts for all agents (`JointPolicy.act`).
      env: a batched env (hapo.train.make_env).
      clip_actions: the run's env.clip_actions.
      deterministic: the Gaussian mean / most probable choice; else samples from `generator`.
      max_steps: cut episodes after this many steps; None: the env's time limit ends them.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    returns: list[float] = []
    lengths: list[int] = []
    while len(returns) < episodes:
        counted = min(env.num_envs, episodes - len(returns))
        episode_return = np.zeros(env.num_envs)
        length = np.zeros(env.num_envs, np.int64)
        playing = np.ones(env.num_envs, bool)
        obs, _, info = env.reset()
        while playing[:counted].any():
            obs, _, reward, terminated, truncated, info = _policy_step(
                policy, env, obs, info, clip_actions=clip_actions, deterministic=deterministic, generator=generator
            )
            episode_return[playing] += reward[playing]
            length[playing] += 1
            playing &= ~(terminated | truncated)
            if max_steps is not None:
                playing &= length < max_steps
        returns += episode_return[:counted].tolist()
        lengths += length[:counted].tolist()
    return Episodes(returns, lengths)


# -- video -----------------------------------------------------------------------------------


def has_renderer(scenario: str) -> bool:
    """Whether `record_video` can film a scenario: the MuJoCo ones, not the toy tasks."""
    return scenario in scenario_names()


def _check_renderable(scenario: str) -> None:
    if not has_renderer(scenario):
        raise ValueError(f"scenario {scenario} has no renderer: only MuJoCo scenarios can be filmed")


# PyOpenGL binds its platform once per process: a backend that fails here could leave this
# process unable to try the next one, so each candidate is first tried in a fresh interpreter.
_GL_PROBE = """
import mujoco
with mujoco.Renderer(mujoco.MjModel.from_xml_string("<mujoco/>"), 8, 8) as renderer:
    renderer.update_scene(mujoco.MjData(renderer.model))
    renderer.render()
"""


@functools.cache
def gl_backend() -> str:
    """The OpenGL backend `mujoco.Renderer` uses in this process, chosen on the first call.

    MUJOCO_GL set by the user is kept. Otherwise the first of EGL and OSMesa that renders
    is set as MUJOCO_GL, and MuJoCo's GL context choice, made when mujoco was imported, is
    redone. Raises RenderError when neither works.
    """
    requested = os.environ.get("MUJOCO_GL")
    if requested:
        return requested
    failures = []
    for backend in HEADLESS_GL:
        try:
            probe = subprocess.run(
                [sys.executable, "-c", _GL_PROBE], env={**os.environ, "MUJOCO_GL": backend},
                capture_output=True, text=True, timeout=120,
            )
        except subprocess.TimeoutExpired:
            failures.append(f"MUJOCO_GL={backend}: no frame within 120 s")
            continue
        if probe.returncode == 0:
            _select_gl_backend(backend)
            return backend
        reason = probe.stderr.strip().splitlines()[-1:] or [f"exit code {probe.returncode}"]
        failures.append(f"MUJOCO_GL={backend}: {reason[0]}")
    raise RenderError(
        "no headless OpenGL for MuJoCo's renderer (" + "; ".join(failures) + "). Install EGL "
        "(e.g. apt-get install libegl1) or OSMesa (libosmesa6), or set MUJOCO_GL to a backend that works"
    )


def _select_gl_backend(backend: str) -> None:
    os.environ["MUJOCO_GL"] = backend
    gl_context = importlib.import_module(mujoco.Renderer.__module__).gl_context
    if getattr(getattr(gl_context, "GLContext", None), "__module__", None) != f"mujoco.{backend}":
        importlib.reload(gl_context)


def _renderer(model, width: int, height: int):
    backend = gl_backend()
    # The offscreen framebuffer must hold the frame; models declare 640x480.
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    # Gymnasium's models ask for a 4096-pixel shadow map: on a software OpenGL (llvmpipe) that
    # doubles the cost of a 640x480 frame, and looks no different from twice the frame's size.
    model.vis.quality.shadowsize = min(model.vis.quality.shadowsize, max(1024, 2 * max(width, height)))
    try:
        return mujoco.Renderer(model, height=height, width=width)
    except Exception as err:
        raise RenderError(f"MuJoCo cannot render with MUJOCO_GL={backend}: {type(err).__name__}: {err}") from err


def _camera(model, data, camera: str | int | None):
    """A camera for Renderer.update_scene: a model camera's id, or a free camera tracking body 1.

    None: the model's first tracking camera (mode track or trackcom) if it has one, else
    the free tracking camera (`TRACKING_CAMERA`, -1), which looks down on body 1's subtree
    from far enough to hold every moving body of `data` (after mj_forward).
    """
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) or str(i) for i in range(model.ncam)]
    if camera is None:
        tracking = {int(mujoco.mjtCamLight.mjCAMLIGHT_TRACK), int(mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM)}
        camera = next((i for i in range(model.ncam) if int(model.cam_mode[i]) in tracking), TRACKING_CAMERA)
    elif isinstance(camera, str):
        try:
            camera = int(camera)
        except ValueError:
            if camera not in names:
                raise ValueError(f"camera {camera!r} is not in the model: its cameras are {names or 'none'}; or -1, a free camera tracking body 1") from None
            camera = names.index(camera)
    if not TRACKING_CAMERA <= camera < model.ncam:
        raise ValueError(f"camera id must lie in [-1, {model.ncam}) (-1: a free camera tracking body 1; the model's: {names or 'none'}), got {camera}")
    if camera != TRACKING_CAMERA:
        return camera
    moving = model.geom_bodyid > 0
    reach = np.linalg.norm(data.geom_xpos[moving] - data.subtree_com[1], axis=1) + model.geom_rbound[moving]
    free = mujoco.MjvCamera()
    mujoco.mjv_defaultFreeCamera(model, free)
    free.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    free.trackbodyid = 1
    free.distance = 3.0 * float(reach.max(initial=model.stat.extent / 5))
    free.elevation = -35.0
    return free


def _check_frame_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2 or value % 2:
            raise ValueError(f"{name} must be an even int >= 2 (H.264 halves the colour resolution), got {value!r}")


def _check_video_path(path: pathlib.Path) -> None:
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"the video is written as MP4: its file name must end in .mp4, got {path}")
    if not path.parent.is_dir():
        raise ValueError(f"cannot write {path}: folder {path.parent} does not exist")


@torch.no_grad()
def record_video(
    policy: JointPolicy,
    env_cfg: EnvConfig,
    path: str | os.PathLike,
    *,
    seed: int = 0,
    deterministic: bool = True,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    fps: float | None = None,
    max_steps: int | None = None,
    camera: str | int | None = None,
) -> int:
    """Film one episode of a MuJoCo scenario to an H.264 MP4 at `path`; return the frames written.

    The episode is the first of `hapo.train.make_env(env_cfg, 1, seed)`; when deterministic,
    it is the one `evaluate_policy` plays first on envs of that seed. Frame t shows the state
    the policy acts on at step t; the video ends with the episode or after `max_steps` frames.
    The file appears only when complete.

    Args:
      env_cfg: the run's env section (scenario, partition, observations, clip_actions).
      seed: the env's seed; it also seeds the action sampling when not `deterministic`.
      width, height: pixels, even.
      fps: frames per second; default the env's real time, 1 / dt.
      camera: a model camera's name or id, or -1 for a free camera tracking body 1;
        default the model's tracking camera, else -1.

    Raises:
      ValueError for a scenario without a renderer (toy tasks) or bad arguments;
      RenderError when no OpenGL backend works.
    """
    from hapo.train import make_env

    _check_renderable(env_cfg.scenario)
    _check_frame_size(width, height)
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    path = pathlib.Path(path)
    _check_video_path(path)
    _, _, model = load_model(env_cfg.scenario, get_scenario(env_cfg.scenario, env_cfg.agent_conf))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    view = _camera(model, data, camera)
    generator = None if deterministic else torch.Generator().manual_seed(seed)
    partial = path.with_name(f"{path.stem}.partial{path.suffix}")
    frames = 0
    try:
        with make_env(env_cfg, 1, seed) as env, _renderer(model, width, height) as renderer:
            limit = env.max_episode_steps if max_steps is None else max_steps
            writer_options = {"fps": fps or 1.0 / env.dt, "codec": "libx264", "macro_block_size": 2}
            with imageio.get_writer(partial, format="FFMPEG", mode="I", **writer_options) as writer:
                obs, _, info = env.reset()
                while True:
                    # Before stepping: after an episode's last step the env already holds the next one's start.
                    data.qpos[:] = env.get_qpos(0)
                    data.qvel[:] = env.get_qvel(0)
                    mujoco.mj_forward(model, data)
                    renderer.update_scene(data, camera=view)
                    writer.append_data(renderer.render())
                    frames += 1
                    if frames == limit:
                        break
                    obs, _, _, terminated, truncated, info = _policy_step(
                        policy, env, obs, info, clip_actions=env_cfg.clip_actions, deterministic=deterministic, generator=generator
                    )
                    if terminated[0] or truncated[0]:
                        break
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return frames


# -- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hapo-eval",
        description=(
            "Play a trained run's team on fresh environments built from its config.yaml and report "
            "the return and length of its episodes; optionally film one episode of a MuJoCo task."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by hapo-train (config.yaml and checkpoint.pt)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes to play (default 10)")
    parser.add_argument("--num-envs", type=int, help="parallel environments (default: the smaller of --episodes and the run's run.eval_num_envs)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions from the policies (default: the Gaussian mean / most probable action)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the environments and of the sampling (default 0)")
    parser.add_argument("--max-steps", type=int, help="cut episodes (and the video) after this many steps (default: the env's time limit)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (returns, lengths, summary) instead of a table")
    video = parser.add_argument_group("video (MuJoCo tasks)")
    video.add_argument("--video", metavar="OUT.mp4", help="also film one episode (env 0 of the seed) to this MP4")
    video.add_argument("--width", type=int, help=f"frame width in pixels, even (default {DEFAULT_WIDTH})")
    video.add_argument("--height", type=int, help=f"frame height in pixels, even (default {DEFAULT_HEIGHT})")
    video.add_argument("--fps", type=float, help="frames per second (default: real time, 1 / the env's dt)")
    video.add_argument("--camera", metavar="NAME_OR_ID", help="a model camera, or -1 for a free camera tracking body 1 (default: the model's tracking camera)")
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for flag, value, minimum in (("--episodes", args.episodes, 1), ("--num-envs", args.num_envs, 1), ("--seed", args.seed, 0), ("--max-steps", args.max_steps, 1)):
        if value is not None and value < minimum:
            parser.error(f"{flag} must be >= {minimum}, got {value}")
    video_only = [f"--{name}" for name in ("width", "height", "fps", "camera") if getattr(args, name) is not None]
    if args.video is None and video_only:
        parser.error(f"{', '.join(video_only)} only apply with --video")
    if args.video is not None:
        try:
            _check_frame_size(args.width or DEFAULT_WIDTH, args.height or DEFAULT_HEIGHT)
            _check_video_path(pathlib.Path(args.video))
        except ValueError as err:
            parser.error(str(err))
        if args.fps is not None and not args.fps > 0:
            parser.error(f"--fps must be > 0, got {args.fps}")
    run_dir = pathlib.Path(args.run_dir)
    if not run_dir.is_dir():
        parser.error(f"run folder {run_dir} does not exist")
    from hapo.train import CHECKPOINT_FILE, CONFIG_FILE

    missing = [name for name in (CONFIG_FILE, CHECKPOINT_FILE) if not (run_dir / name).is_file()]
    if missing:
        parser.error(f"{run_dir} is not a finished run folder: it has no {' and no '.join(missing)}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    from hapo.train import load_policy, make_env

    try:
        config, policy = load_policy(args.run_dir)
        if args.video is not None:
            _check_renderable(config.env.scenario)
    except (ValueError, OSError) as err:  # ConfigError and CheckpointError are ValueErrors
        parser.error(str(err))
    torch.set_num_threads(config.run.torch_threads)
    num_envs = args.num_envs or min(args.episodes, config.run.eval_num_envs)
    deterministic = not args.stochastic
    result = {
        "run_dir": str(args.run_dir),
        "scenario": config.env.scenario,
        "agent_conf": config.env.agent_conf,
        "algo": config.algo.name,
        "episodes": args.episodes,
        "num_envs": num_envs,
        "seed": args.seed,
        "deterministic": deterministic,
        "max_steps": args.max_steps,
    }
    with make_env(config.env, num_envs, args.seed) as env:
        if args.video is not None:  # first: a bad camera or no OpenGL is reported before the episodes run
            result["video"] = _film(parser, args, config.env, policy, fps=args.fps or 1.0 / env.dt)
        generator = None if deterministic else torch.Generator().manual_seed(args.seed)
        episodes = evaluate_policy(
            policy, env, args.episodes, clip_actions=config.env.clip_actions,
            deterministic=deterministic, generator=generator, max_steps=args.max_steps,
        )
    result.update(returns=episodes.returns, lengths=episodes.lengths, summary=episodes.summary())
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        _print_report(result)
    return 0


def _film(parser: argparse.ArgumentParser, args: argparse.Namespace, env_cfg: EnvConfig, policy: JointPolicy, fps: float) -> dict:
    """record_video as the flags say; what was written, for the report."""
    width, height = args.width or DEFAULT_WIDTH, args.height or DEFAULT_HEIGHT
    start = time.perf_counter()
    try:
        frames = record_video(
            policy, env_cfg, args.video, seed=args.seed, deterministic=not args.stochastic,
            width=width, height=height, fps=fps, max_steps=args.max_steps, camera=args.camera,
        )
    except (RenderError, ValueError, OSError) as err:
        parser.error(str(err))
    seconds = time.perf_counter() - start
    return {"path": args.video, "frames": frames, "width": width, "height": height, "fps": fps, "seconds": seconds}


def _print_report(result: dict) -> None:
    mode = "deterministic" if result["deterministic"] else "stochastic"
    table = Table(title=f"{result['run_dir']}: {len(result['returns'])} {mode} episodes on {result['num_envs']} envs, seed {result['seed']}")
    table.add_column("")
    for column in ("mean", "std", "min", "max"):
        table.add_column(column, justify="right")
    for name, label in (("return", "episode return"), ("length", "episode length")):
        stats = result["summary"][name]
        table.add_row(label, *(f"{stats[key]:.4g}" for key in ("mean", "std", "min", "max")))
    console = Console()
    console.print(table)
    if "video" in result:
        video = result["video"]
        console.print(
            f"video: {video['path']}, {video['frames']} frames of {video['width']}x{video['height']} at {video['fps']:.4g} fps "
            f"in {video['seconds']:.1f} s ({video['frames'] / video['seconds']:.0f} frames/s to set up, simulate, render and encode)"
        )


if __name__ == "__main__":
    sys.exit(main())
