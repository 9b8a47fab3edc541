"""Filming a trained team: one episode of a MuJoCo scenario rendered offscreen with
`mujoco.Renderer` and written to MP4 (`hapo-eval --video`, and the trainer's `run.video_interval`).

The OpenGL backend is MUJOCO_GL if set, else EGL, else OSMesa (each tried first in a fresh
process: PyOpenGL fixes its platform once per process).
"""

from __future__ import annotations

import functools
import importlib
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

import imageio.v2 as imageio
import mujoco
import numpy as np
import torch

from hapo.config import EnvConfig
from hapo.envs.env import load_model
from hapo.envs.partitions import get_scenario, scenario_names
from hapo.evaluation import policy_step
from hapo.models import JointPolicy

# hapo.train is imported where it is used: the trainer calls record_video, and an import at
# the top would make the two modules import each other.

HEADLESS_GL = ("egl", "osmesa")
TRACKING_CAMERA = -1
DEFAULT_WIDTH, DEFAULT_HEIGHT = 640, 480


class RenderError(RuntimeError):
    """Offscreen rendering is impossible on this machine (no working OpenGL backend)."""


# -- video -----------------------------------------------------------------------------------


def has_renderer(scenario: str) -> bool:
    """Whether `record_video` can film a scenario: the MuJoCo ones, not the toy tasks."""
    return scenario in scenario_names()


def check_renderable(scenario: str) -> None:
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


def check_frame_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2 or value % 2:
            raise ValueError(f"{name} must be an even int >= 2 (H.264 halves the colour resolution), got {value!r}")


def check_video_path(path: pathlib.Path) -> None:
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
    on_frame: Callable[[np.ndarray], None] | None = None,
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
      on_frame: called with each frame (uint8 [height, width, 3]) as it is written.

    Raises:
      ValueError for a scenario without a renderer (toy tasks) or bad arguments;
      RenderError when no OpenGL backend works.
    """
    from hapo.train import make_env

    check_renderable(env_cfg.scenario)
    check_frame_size(width, height)
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    path = pathlib.Path(path)
    check_video_path(path)
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
                    frame = renderer.render()
                    writer.append_data(frame)
                    if on_frame is not None:
                        on_frame(frame)
                    frames += 1
                    if frames == limit:
                        break
                    obs, _, _, terminated, truncated, info = policy_step(
                        policy, env, obs, info, clip_actions=env_cfg.clip_actions, deterministic=deterministic, generator=generator
                    )
                    if terminated[0] or truncated[0]:
                        break
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return frames
