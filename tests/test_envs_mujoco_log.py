"""MuJoCo's warnings of our model loads and steps go to logging; MuJoCo's own handling stays.

Gymnasium's HalfCheetah uses the deprecated compiler attribute 'settotalmass': MuJoCo
warns on every compile of it, which by default prints to stderr and appends to
MUJOCO_LOG.TXT in the current directory.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import gymnasium
import mujoco
import numpy as np
import pytest

from hapo import _core
from hapo.envs import make
from hapo.envs.env import load_model, model_path
from hapo.envs.layouts import build_layout
from hapo.envs.partitions import get_scenario

LOG_FILE = "MUJOCO_LOG.TXT"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The test's own current directory, where MuJoCo's default handler writes its log."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def debug_log(caplog, monkeypatch):
    """caplog with "hapo.envs" at DEBUG, and no other handler that could print its records
    (an earlier test's hapo-train run leaves its console handler on the root logger)."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    caplog.set_level(logging.DEBUG, logger="hapo.envs")
    return caplog


def mujoco_own_warning(capfd, workdir) -> str:
    """The warning text MuJoCo's current handler prints for a plain compile of HalfCheetah
    (asserting that it prints it and writes MUJOCO_LOG.TXT, as MuJoCo does by default)."""
    capfd.readouterr()
    mujoco.MjModel.from_xml_path(model_path("HalfCheetah"))
    out, err = capfd.readouterr()
    assert out == ""
    assert err.startswith("WARNING: ")
    assert (workdir / LOG_FILE).exists()
    return err.removeprefix("WARNING: ").strip()


def hapo_records(debug_log) -> list[str]:
    return [r.getMessage() for r in debug_log.records if r.name == "hapo.envs" and r.levelno == logging.DEBUG]


def test_make_logs_compile_warnings_and_leaves_mujoco_as_it_was(workdir, capfd, debug_log):
    make("HalfCheetah", "6x1").close()
    assert capfd.readouterr() == ("", "")
    assert not (workdir / LOG_FILE).exists()
    logged = hapo_records(debug_log)
    # Afterwards MuJoCo's default handler is back: a plain compile prints and writes the log.
    text = mujoco_own_warning(capfd, workdir)
    assert "settotalmass" in text
    # One per compile: the layout's model (Python) and the batched env's (C++).
    assert logged == [f"MuJoCo: {text}"] * 2


def test_user_warning_hook_is_kept(workdir, capfd, debug_log):
    """A handler installed through the mujoco package stays installed and keeps receiving
    the warnings of everyone's compiles but ours."""
    received = []
    mujoco.set_mju_user_warning(received.append)
    try:
        make("HalfCheetah", "2x3").close()
        assert received == []
        mujoco.MjModel.from_xml_path(model_path("HalfCheetah"))
    finally:
        mujoco.set_mju_user_warning(None)
    assert len(received) == 1
    assert hapo_records(debug_log) == [f"MuJoCo: {received[0]}"] * 2
    assert capfd.readouterr() == ("", "")
    assert not (workdir / LOG_FILE).exists()


def test_concurrent_makes(workdir, capfd, debug_log):
    threads, makes = 4, 3
    start = threading.Barrier(threads)

    def build():
        start.wait()
        for _ in range(makes):
            make("HalfCheetah", "6x1").close()

    with ThreadPoolExecutor(threads) as pool:
        for done in [pool.submit(build) for _ in range(threads)]:
            done.result()
    assert capfd.readouterr() == ("", "")
    assert not (workdir / LOG_FILE).exists()
    logged = hapo_records(debug_log)
    assert logged == [f"MuJoCo: {mujoco_own_warning(capfd, workdir)}"] * (threads * makes * 2)


def test_other_threads_warnings_are_not_captured(workdir, capfd):
    """While one thread captures, another thread's compile warns through MuJoCo's handler."""
    capturing, other_done = threading.Event(), threading.Event()

    def wait_for_other():
        capturing.set()
        assert other_done.wait(timeout=60)
        return "done"

    def other():
        assert capturing.wait(timeout=60)
        mujoco.MjModel.from_xml_path(model_path("HalfCheetah"))
        other_done.set()

    worker = threading.Thread(target=other)
    worker.start()
    result, warnings = _core.capture_mujoco_warnings(wait_for_other)
    worker.join()
    assert (result, warnings) == ("done", [])
    out, err = capfd.readouterr()
    assert err.startswith("WARNING: ") and "settotalmass" in err
    assert (workdir / LOG_FILE).exists()


def halfcheetah_core(path: str, xml: str) -> _core.BatchedEnv:
    spec = get_scenario("HalfCheetah", "6x1")
    layout = build_layout(load_model("HalfCheetah", spec)[2], spec, "6x1", 1)
    return _core.BatchedEnv(
        path, xml, spec.task, 1, 1, 0, 10, layout.agent_actuators, layout.agent_obs, layout.state
    )


@pytest.mark.parametrize(
    "path,xml",
    [
        ("/nonexistent/model.xml", ""),
        ("<generated>", "<mujoco><worldbody>"),
        ("<generated>", "<mujoco><worldbody><body><joint type='nonsense'/></body></worldbody></mujoco>"),
        (
            "<generated>",
            "<mujoco><worldbody><body><joint name='j'/><geom size='1'/></body></worldbody>"
            "<actuator><motor joint='missing'/></actuator></mujoco>",
        ),
    ],
    ids=["no-file", "malformed", "bad-keyword", "compile-error"],
)
def test_bad_model_raises_with_mujoco_message(workdir, capfd, path, xml):
    with pytest.raises(ValueError) as mujoco_error:
        mujoco.MjModel.from_xml_string(xml) if xml else mujoco.MjModel.from_xml_path(path)
    with pytest.raises(ValueError, match="cannot load MuJoCo model") as ours:
        _core.capture_mujoco_warnings(lambda: halfcheetah_core(path, xml))
    assert str(mujoco_error.value) in str(ours.value)
    assert not (workdir / LOG_FILE).exists()


def test_an_unstable_step_is_logged_for_its_env_and_resets_the_physics_like_gymnasium(tmp_path, monkeypatch, capfd, debug_log):
    # qvel of 1e200 is finite, so set_state takes it; MuJoCo's next step finds the velocity
    # too large, warns that the simulation is unstable and resets the physics.
    ours, theirs = tmp_path / "ours", tmp_path / "gymnasium"
    ours.mkdir(), theirs.mkdir()
    monkeypatch.chdir(ours)
    env = make("HalfCheetah", "2x3", num_envs=2, num_threads=2, seed=3)
    env.reset()
    qpos, qvel = env.get_qpos(0), np.full_like(env.get_qvel(0), 1e200)
    capfd.readouterr()
    env.set_state(0, qpos, qvel)
    _, _, reward, terminated, truncated, info = env.step([np.zeros((2, n), np.float32) for n in env.action_sizes])
    warnings = [r.getMessage() for r in debug_log.records if r.name == "hapo.envs" and r.levelno == logging.WARNING]
    assert capfd.readouterr() == ("", "")
    assert list(ours.iterdir()) == []

    # Gymnasium's HalfCheetah on the same MuJoCo: its handler prints the warning, and the step
    # ends in the same reset physics.
    monkeypatch.chdir(theirs)
    reference = gymnasium.make("HalfCheetah-v5").unwrapped
    reference.reset(seed=0)
    reference.set_state(qpos, qvel)
    ref_obs, ref_reward, ref_terminated, ref_truncated, _ = reference.step(np.zeros(6))
    printed = capfd.readouterr().err.strip().splitlines()[-1]  # after the compile's deprecation notice
    assert printed.startswith("WARNING: ") and "unstable" in printed
    assert warnings == [f"MuJoCo warning in HalfCheetah 2x3, env 0: {printed.removeprefix('WARNING: ')}"]
    np.testing.assert_array_equal(env.get_qpos(0), reference.data.qpos)
    np.testing.assert_array_equal(info["final_state"][0], ref_obs.astype(np.float32))
    np.testing.assert_allclose(reward[0], ref_reward, rtol=3e-7, atol=1e-6)
    assert (terminated[0], truncated[0]) == (ref_terminated, False)
    reference.close()
