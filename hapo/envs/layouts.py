"""Index tables of a batched env, computed once from the model and the scenario data.

An observation layout is a table the C++ gather evaluates per env: row j gives
(field, op, index, index2) and (low, high); see cpp/env/observation.h.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from hapo import _core
from hapo.envs.partitions import GLOBAL_CATEGORIES, Joint, Scenario, Span

FIELD = {name: i for i, name in enumerate(_core.ENV_FIELDS)}
OP = {name: i for i, name in enumerate(_core.ENV_OPS)}
# Entries per body of the body-indexed fields.
BODY_ROW = {"cinert": 10, "cvel": 6, "cfrc_ext": 6, "xpos": 3}

Element = tuple[int, int, int, int, float, float]


@dataclass(frozen=True)
class Layout:
    """What the C++ env needs besides the task: per agent, the actuator of each local
    action and the observation table; and the global state table."""

    agent_actuators: list[list[int]]
    agent_obs: list[tuple[np.ndarray, np.ndarray]]
    state: tuple[np.ndarray, np.ndarray]


def joints_by_distance(
    agent: tuple[str, ...], edges: tuple[tuple[str, ...], ...], k: int, order: dict[str, str] | None = None
) -> list[list[str]]:
    """Joint labels at graph distance 0..k from an agent's joints, each level sorted by
    label (or by order[label] where given).

    Members of one hyperedge are all neighbours of each other.
    """
    order = order or {}

    def level(labels: set[str]) -> list[str]:
        return sorted(labels, key=lambda label: (order.get(label, label), label))

    explored = set(agent)
    frontier = set(agent)
    levels = [level(frontier)]
    for _ in range(k):
        frontier = {n for e in edges for m in frontier if m in e for n in e} - explored
        explored |= frontier
        levels.append(level(frontier))
    return levels


def _field_size(model: mujoco.MjModel, name: str) -> int:
    """Entries of a field as Spans index it (ten_J: the dense ntendon x nv Jacobian)."""
    if name in BODY_ROW:
        return BODY_ROW[name] * model.nbody
    sizes = {"qpos": model.nq, "ten_J": model.ntendon * model.nv, "ten_length": model.ntendon, "ten_velocity": model.ntendon}
    return sizes.get(name, model.nv)


def _element(field: str, index: int, clip: tuple[float, float] | None) -> Element:
    if clip is None:
        return (FIELD[field], OP["copy"], index, 0, 0.0, 0.0)
    return (FIELD[field], OP["clip"], index, 0, clip[0], clip[1])


def _dense_ten_j(model: mujoco.MjModel, index: int) -> Element:
    """Entry `index` of the dense tendon Jacobian, read from MuJoCo's sparse one, whose
    structure is fixed by the model: the stored entry, or a constant 0 where it stores none."""
    tendon, dof = divmod(index, model.nv)
    start = int(model.ten_J_rowadr[tendon])
    for i in range(start, start + int(model.ten_J_rownnz[tendon])):
        if model.ten_J_colind[i] == dof:
            return _element("ten_J", i, None)
    return (FIELD["qpos"], OP["const"], 0, 0, 0.0, 0.0)


def _span_elements(model: mujoco.MjModel, span: Span) -> list[Element]:
    stop = _field_size(model, span.field) if span.stop is None else span.stop
    if span.field == "ten_J":
        if span.op != "copy" or span.clip is not None:
            raise ValueError(f"{span}: the tendon Jacobian is copied only")
        return [_dense_ten_j(model, i) for i in range(span.start, stop)]
    if span.op == "copy":
        return [_element(span.field, i, span.clip) for i in range(span.start, stop)]
    if span.clip is not None:
        raise ValueError(f"{span}: clip applies to copied entries only")
    return [
        (FIELD[span.field], OP[span.op], i, span.other + i - span.start, 0.0, 0.0)
        for i in range(span.start, stop)
    ]


def _encode(elements: list[Element]) -> tuple[np.ndarray, np.ndarray]:
    table = np.array(elements, dtype=np.float64).reshape(-1, 6)
    return table[:, :4].astype(np.int32), np.ascontiguousarray(table[:, 4:])


def _joint_actuator(model: mujoco.MjModel, joint_id: int) -> int:
    for a in range(model.nu):
        if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT and model.actuator_trnid[a, 0] == joint_id:
            return a
    raise ValueError(f"joint {joint_id} has no actuator")


def _joint_id(model: mujoco.MjModel, name: str) -> int:
    jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    if jid < 0:
        raise ValueError(f"the model has no joint {name!r}")
    return jid


def _observed_entries(model: mujoco.MjModel, joint: Joint) -> tuple[int, int]:
    """The qpos and the qvel (= qfrc_actuator) index a node observes."""
    if isinstance(joint.observes, int):
        return joint.observes % model.nq, joint.observes % model.nv
    jid = _joint_id(model, joint.joint if joint.observes is None else joint.observes)
    return int(model.jnt_qposadr[jid]), int(model.jnt_dofadr[jid])


def agent_observation(
    model: mujoco.MjModel, scenario: Scenario, agent: tuple[str, ...], k: int
) -> list[Element]:
    """Local part (joints up to distance k, by category) then the global part."""
    joints = {j.label: j for j in scenario.joints}
    order = {j.label: j.order for j in scenario.joints}
    elements: list[Element] = []
    seen_bodies: dict[str, set[int]] = {}
    categories = scenario.local_categories
    for depth, labels in enumerate(joints_by_distance(agent, scenario.edges, k, order)):
        for label in labels:
            joint = joints[label]
            qpos, dof = _observed_entries(model, joint)
            for category in categories[min(depth, len(categories) - 1)]:
                clip = scenario.local_clip.get(category)
                if category in joint.obs:
                    for span in joint.obs[category]:
                        elements += _span_elements(model, span)
                elif category == "qpos":
                    elements.append(_element("qpos", qpos, clip))
                elif category in ("qvel", "qfrc_actuator"):
                    elements.append(_element(category, dof, clip))
                elif category in BODY_ROW:
                    row = BODY_ROW[category]
                    seen = seen_bodies.setdefault(category, set())
                    for body in joint.bodies:
                        if body not in seen:
                            seen.add(body)
                            elements += _span_elements(
                                model, Span(category, row * body, row * (body + 1), clip)
                            )
    for category in GLOBAL_CATEGORIES:
        for span in scenario.global_obs.get(category, ()):
            elements += _span_elements(model, span)
    return elements


def one_hot(index: int, size: int) -> list[Element]:
    """Constant entries: 1 at `index`, 0 elsewhere (an agent's id)."""
    return [(FIELD["qpos"], OP["const"], 0, 0, float(j == index), float(j == index)) for j in range(size)]


OBS_MODES = ("local", "global")


def build_layout(
    model: mujoco.MjModel, scenario: Scenario, partition: str | None, agent_obsk: int | None, obs_mode: str = "local"
) -> Layout:
    """The tables of one scenario and partition.

    partition None or agent_obsk None: one agent drives every actuator in the model's
    order and observes the global state (as `mamujoco_v1` does).
    obs_mode "local": each agent observes joints up to distance agent_obsk (MaMuJoCo's
    view); "global": each agent observes the global state (the single-agent task's
    observation) followed by its one-hot id, as the paper's authors' code does.
    """
    state: list[Element] = []
    for span in scenario.state:
        state += _span_elements(model, span)
    if partition is None or agent_obsk is None:
        return Layout([list(range(model.nu))], [_encode(state)], _encode(state))
    joints = {j.label: j for j in scenario.joints}
    agents = scenario.partitions[partition]
    actuators, observations = [], []
    for i, agent in enumerate(agents):
        ids = [_joint_id(model, joints[label].joint) for label in agent]
        actuators.append([_joint_actuator(model, jid) for jid in ids])
        if obs_mode == "global":
            observations.append(_encode(state + one_hot(i, len(agents))))
        else:
            observations.append(_encode(agent_observation(model, scenario, agent, agent_obsk)))
    return Layout(actuators, observations, _encode(state))
