"""hapo-eval: episode returns against plain loops and the trainer's own evaluation, videos
that decode to the frames asked for, and clear errors."""

import json
import os
import re
import subprocess
import sys

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from hapo import config
from hapo.experiments.evaluate import evaluate_policy, main, record_video
from hapo.models import Actor, JointPolicy
from hapo.train import Trainer, make_env

QUIET = ["run.progress=false", "run.tensorboard=false"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("toy_run")
    Trainer(config.load("toy_reach").with_overrides(QUIET + ["run.num_env_steps=1280"]), run_dir=run_dir).train()
    return run_dir


@pytest.fixture(scope="module")
def cheetah_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cheetah_run")
    cfg = config.load("quickstart_halfcheetah_6x1").with_overrides(QUIET + [
        "run.num_env_steps=800", "env.num_envs=4", "algo.rollout_length=200", "run.eval_num_envs=2",
        "run.eval_episodes=2", "algo.ppo_epochs=1", "algo.critic_epochs=1",
    ])
    Trainer(cfg, run_dir=run_dir).train()
    return run_dir


@pytest.fixture(scope="module")
def hopper():
    """(config, policy) of untrained Hopper 3x1 actors: their episodes end when it falls, at various steps."""
    cfg = config.Config().with_overrides(["env.scenario=Hopper", "env.agent_conf=3x1"])
    with make_env(cfg.env, 1, seed=0) as env:
        torch.manual_seed(0)
        actors = [Actor(o, a, "continuous", cfg.model) for o, a in zip(env.obs_sizes, env.action_sizes)]
    return cfg, JointPolicy(actors)


def trained(run_dir):
    """(config, policy) of a run, read by the trainer."""
    trainer = Trainer.resume(run_dir, progress=False)
    return trainer.config, trainer.policy()


def run_json(capsys, *argv) -> dict:
    assert main([*map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def eval_error(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def decode(path) -> tuple[np.ndarray, float]:
    """(frames uint8 [T, H, W, 3], fps) of an H.264 video, decoded by the ffmpeg that imageio-ffmpeg
    ships (imageio's own reader leaves a pipe to the garbage collector: a ResourceWarning)."""
    ffmpeg = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    )
    stream = re.search(r"Video: h264 .*?, (\d+)x(\d+)[, ].*?, ([\d.]+) fps", ffmpeg.stderr.decode())
    assert stream is not None, ffmpeg.stderr.decode()
    width, height, fps = int(stream[1]), int(stream[2]), float(stream[3])
    return np.frombuffer(ffmpeg.stdout, np.uint8).reshape(-1, height, width, 3), fps


def plain_episodes(policy, cfg, num_envs, seed, steps, *, clip=True, generator=None):
    """Each env's episodes (return, length) in order over `steps` steps of a fresh env: a slow reference."""
    env = make_env(cfg.env, num_envs, seed)
    low, high = [torch.as_tensor(x) for x in env.action_low], [torch.as_tensor(x) for x in env.action_high]
    obs, _, _ = env.reset()
    running, length = np.zeros(num_envs), np.zeros(num_envs, int)
    finished = [[] for _ in range(num_envs)]
    for _ in range(steps):
        actions = policy.act(obs, deterministic=generator is None, generator=generator)
        if clip:
            actions = [a.clamp(lo, hi) for a, lo, hi in zip(actions, low, high)]
        obs, _, reward, terminated, truncated, _ = env.step([a.numpy() for a in actions])
        running += reward
        length += 1
        for j in np.flatnonzero(terminated | truncated):
            finished[j].append((float(running[j]), int(length[j])))
            running[j], length[j] = 0.0, 0
    env.close()
    return finished, running, length


@pytest.mark.parametrize("run", ["toy_run", "cheetah_run"])
def test_deterministic_mean_return_is_the_trainers_evaluation_on_the_same_env(run, request, capsys):
    run_dir = request.getfixturevalue(run)
    trainer = Trainer.resume(run_dir, progress=False)
    trainer.eval_env = make_env(trainer.config.env, 2, seed=7)
    expected = trainer.evaluate(episodes=2)

    result = run_json(capsys, run_dir, "--episodes", 2, "--num-envs", 2, "--seed", 7)
    assert len(result["returns"]) == len(result["lengths"]) == 2
    assert result["summary"]["return"]["mean"] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert result["deterministic"] is True

    assert main([str(run_dir), "--episodes", "2", "--num-envs", "2", "--seed", "7"]) == 0
    table = capsys.readouterr().out
    assert "episode return" in table and f"{expected:.4g}" in table


def test_episodes_come_in_rounds_from_a_reset_and_are_summarised(toy_run, capsys):
    """5 episodes on 2 envs: three rounds, the last of which counts env 0 only."""
    result = run_json(capsys, toy_run, "--episodes", 5, "--num-envs", 2, "--seed", 3)
    cfg, policy = trained(toy_run)
    finished, _, _ = plain_episodes(policy, cfg, 2, seed=3, steps=10)
    assert result["returns"][:2] == pytest.approx([finished[0][0][0], finished[1][0][0]], rel=1e-12)
    assert len(set(result["returns"])) == 5
    assert result["lengths"] == [10] * 5
    returns = np.array(result["returns"])
    assert result["summary"]["return"] == pytest.approx({"mean": returns.mean(), "std": returns.std(), "min": returns.min(), "max": returns.max()})
    assert result["summary"]["length"] == {"mean": 10.0, "std": 0.0, "min": 10.0, "max": 10.0}


def test_stochastic_samples_actions_from_the_seeded_generator(toy_run, capsys):
    deterministic = run_json(capsys, toy_run, "--episodes", 4, "--seed", 5)
    stochastic = run_json(capsys, toy_run, "--episodes", 4, "--seed", 5, "--stochastic")
    assert stochastic["deterministic"] is False
    assert not np.allclose(stochastic["returns"], deterministic["returns"])

    cfg, policy = trained(toy_run)
    finished, _, _ = plain_episodes(policy, cfg, 4, seed=5, steps=10, generator=torch.Generator().manual_seed(5))
    assert stochastic["returns"] == pytest.approx([env_episodes[0][0] for env_episodes in finished], rel=1e-12)


def test_max_steps_cuts_episodes(toy_run, capsys):
    result = run_json(capsys, toy_run, "--episodes", 3, "--num-envs", 3, "--max-steps", 4)
    cfg, policy = trained(toy_run)
    _, partial, length = plain_episodes(policy, cfg, 3, seed=0, steps=4)
    assert result["lengths"] == length.tolist() == [4, 4, 4]
    assert result["returns"] == pytest.approx(partial.tolist(), rel=1e-12)

    twice = run_json(capsys, toy_run, "--episodes", 6, "--num-envs", 3, "--max-steps", 4)
    assert twice["lengths"] == [4] * 6
    assert len(set(twice["returns"])) == 6  # the second round starts afresh


@pytest.mark.parametrize("clip", [True, False])
def test_actions_are_clipped_as_the_run_says(cheetah_run, clip):
    cfg, policy = trained(cheetah_run)
    with make_env(cfg.env, 2, seed=1) as env:
        episodes = evaluate_policy(
            policy, env, 2, clip_actions=clip, deterministic=False, generator=torch.Generator().manual_seed(9), max_steps=50
        )
    _, partial, _ = plain_episodes(policy, cfg, 2, seed=1, steps=50, clip=clip, generator=torch.Generator().manual_seed(9))
    assert episodes.returns == pytest.approx(partial.tolist(), rel=1e-12)
    assert episodes.lengths == [50, 50]
    _, other, _ = plain_episodes(policy, cfg, 2, seed=1, steps=50, clip=not clip, generator=torch.Generator().manual_seed(9))
    assert not np.allclose(partial, other)  # the clipping matters to these returns: the test can tell


def test_video_of_one_episode_decodes_to_the_frames_asked_for(cheetah_run, tmp_path, capsys):
    out = tmp_path / "cheetah.mp4"
    result = run_json(capsys, cheetah_run, "--episodes", 1, "--video", out, "--max-steps", 30, "--width", 320, "--height", 240)
    assert result["video"]["frames"] == 30 and result["video"]["fps"] == pytest.approx(20.0)
    frames, fps = decode(out)
    assert fps == 20.0
    assert frames.shape == (30, 240, 320, 3)
    frames = frames.astype(np.int16)
    assert frames.std() > 10  # a picture, not a blank frame
    changes = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    assert (changes > 0.1).sum() >= 20, changes  # the cheetah moves (and the tracking camera with it)
    assert not list(tmp_path.glob("*.partial.mp4"))


def test_each_env_counts_its_first_episode_only(hopper):
    cfg, policy = hopper
    with make_env(cfg.env, 3, seed=4) as env:
        episodes = evaluate_policy(policy, env, 3, clip_actions=True)
    finished, _, _ = plain_episodes(policy, cfg, 3, seed=4, steps=1000)
    assert episodes.returns == pytest.approx([f[0][0] for f in finished], rel=1e-12)
    assert episodes.lengths == [f[0][1] for f in finished]
    assert len(set(episodes.lengths)) == 3 and max(episodes.lengths) < 1000  # falls, at different steps


def test_video_stops_where_the_episode_ends(hopper, tmp_path):
    """Hopper falls: the video holds one frame per step of the episode (the state acted on)."""
    cfg, policy = hopper
    with make_env(cfg.env, 1, seed=4) as env:
        length = evaluate_policy(policy, env, 1, clip_actions=True).lengths[0]
    assert length < 1000  # it fell
    path = tmp_path / "hopper.mp4"
    frames = record_video(policy, cfg.env, path, seed=4, width=64, height=48, camera="track")
    assert frames == length
    assert decode(path)[0].shape == (length, 48, 64, 3)


def test_record_video_names_a_missing_camera(cheetah_run, tmp_path):
    cfg, policy = trained(cheetah_run)
    with pytest.raises(ValueError, match=r"camera 'side' is not in the model: its cameras are \['track'\]"):
        record_video(policy, cfg.env, tmp_path / "x.mp4", camera="side", max_steps=2)
    with pytest.raises(ValueError, match=r"camera id must lie in \[-1, 1\)"):
        record_video(policy, cfg.env, tmp_path / "x.mp4", camera=3, max_steps=2)
    assert record_video(policy, cfg.env, tmp_path / "free.mp4", camera=-1, max_steps=3, width=64, height=48) == 3


def test_toy_scenario_has_no_video(toy_run, tmp_path, capsys):
    err = eval_error(capsys, toy_run, "--video", tmp_path / "toy.mp4")
    assert "hapo-eval: error: scenario ToyReach has no renderer" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "message"), [
    (["--episodes", "0"], "--episodes must be >= 1, got 0"),
    (["--num-envs", "0"], "--num-envs must be >= 1, got 0"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--max-steps", "0"], "--max-steps must be >= 1, got 0"),
    (["--width", "320"], "--width only apply with --video"),
    (["--video", "out.mp4", "--width", "321"], "width must be an even int >= 2"),
    (["--video", "out.mp4", "--fps", "0"], "--fps must be > 0"),
    (["--video", "out.gif"], "must end in .mp4"),
    (["--video", "no/such/folder/out.mp4"], "folder no/such/folder does not exist"),
    (["--episodes", "many"], "invalid int value: 'many'"),
])
def test_bad_flags_are_usage_errors(toy_run, capsys, args, message):
    assert message in eval_error(capsys, toy_run, *args)


def test_missing_or_broken_run_files_are_usage_errors(toy_run, tmp_path, capsys):
    assert f"run folder {tmp_path / 'nothing'} does not exist" in eval_error(capsys, tmp_path / "nothing")
    (tmp_path / "config.yaml").write_text((toy_run / "config.yaml").read_text())
    assert "is not a finished run folder: it has no checkpoint.pt" in eval_error(capsys, tmp_path)
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    err = eval_error(capsys, tmp_path)
    assert err.startswith("usage: hapo-eval") and f"hapo-eval: error: checkpoint {tmp_path / 'checkpoint.pt'}" in err


def test_no_headless_opengl_is_a_clear_error(cheetah_run, tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env["__EGL_VENDOR_LIBRARY_FILENAMES"] = str(tmp_path / "no_vendor.json")  # EGL finds no driver
    out = tmp_path / "x.mp4"
    result = subprocess.run(
        [sys.executable, "-P", "-m", "hapo.experiments.evaluate", str(cheetah_run), "--episodes", "1", "--max-steps", "2", "--video", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    if result.returncode == 0:
        pytest.skip("OSMesa renders on this machine: no backend fails")
    assert result.returncode == 2, result.stderr
    assert "hapo-eval: error: no headless OpenGL for MuJoCo's renderer (MUJOCO_GL=egl: " in result.stderr
    assert "MUJOCO_GL=osmesa: " in result.stderr and "Install EGL" in result.stderr
    assert not out.exists()


def test_training_films_at_its_video_interval_without_changing_its_numbers(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = QUIET + [
        "run.num_env_steps=1200", "env.num_envs=2", "algo.rollout_length=200", "run.eval_interval=0",
        "algo.ppo_epochs=1", "algo.critic_epochs=1", "run.tensorboard=true",
    ]
    plain = config.load("quickstart_halfcheetah_6x1").with_overrides(overrides)
    Trainer(plain, run_dir=tmp_path / "plain").train()
    filmed = plain.with_overrides(["run.video_interval=2", "run.video_steps=12"])
    Trainer(filmed, run_dir=tmp_path / "filmed").train()
    assert (tmp_path / "filmed" / "metrics.csv").read_bytes() == (tmp_path / "plain" / "metrics.csv").read_bytes()
    videos = sorted(p.name for p in (tmp_path / "filmed" / "videos").iterdir())
    assert videos == ["iteration2.mp4", "iteration3.mp4"]  # every 2 iterations, and after the last (3)
    frames, fps = decode(tmp_path / "filmed" / "videos" / "iteration2.mp4")
    assert frames.shape == (12, 240, 320, 3) and fps == pytest.approx(20.0)
    events = EventAccumulator(str(tmp_path / "filmed" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    shown = events.Images("video/episode")
    assert [image.step for image in shown] == [800, 1200]
    import imageio.v3 as iio

    gif = iio.imread(shown[0].encoded_image_string, extension=".gif")
    assert gif.shape[0] == 6 and gif.shape[1:3] == (240, 320)  # every other frame
    assert not (tmp_path / "plain" / "videos").exists()
