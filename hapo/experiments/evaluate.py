"""`hapo-eval RUN_DIR`: play a trained team on fresh environments and report its returns;
optionally film one episode of a MuJoCo task to an MP4.

Python API::

    from hapo.evaluation import evaluate_policy
    from hapo.train import make_env
    from hapo.video import record_video

    env = make_env(cfg.env, num_envs=10, seed=0)
    episodes = evaluate_policy(policy, env, 20, clip_actions=cfg.env.clip_actions)
    episodes.returns, episodes.lengths, episodes.summary()
    record_video(policy, cfg.env, "team.mp4", seed=0, max_steps=300)   # -> frames written

`policy` is a `hapo.models.JointPolicy` (e.g. `Trainer.policy()`). Rendering is offscreen
with `mujoco.Renderer` on a headless OpenGL: MUJOCO_GL if set, else EGL, else OSMesa.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import torch
from rich.console import Console
from rich.table import Table

from hapo.config import EnvConfig
from hapo.evaluation import evaluate_policy
from hapo.models import JointPolicy
from hapo.video import (
    DEFAULT_HEIGHT, DEFAULT_WIDTH, RenderError, check_frame_size, check_renderable, check_video_path, record_video,
)

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
            check_frame_size(args.width or DEFAULT_WIDTH, args.height or DEFAULT_HEIGHT)
            check_video_path(pathlib.Path(args.video))
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
        if args.stochastic and any(actor.kind == "deterministic" for actor in policy.actors):
            raise ValueError(f"--stochastic: {config.algo.name}'s actors are deterministic (its exploration noise is the trainer's); drop --stochastic")
        if args.video is not None:
            check_renderable(config.env.scenario)
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
    if episodes.wins is not None:
        result.update(wins=episodes.wins, win_rate=episodes.win_rate)
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
    for name, label in (("return", "episode return"), ("length", "episode length"), ("win", "win (mean: win rate)")):
        if name not in result["summary"]:
            continue
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
