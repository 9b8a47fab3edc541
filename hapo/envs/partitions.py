"""Scenarios as data: joint graphs, agent partitions and observation layouts.

The facts (which joints form each agent, in which order, which joints neighbour
which, what each joint and the global part of an observation contain) are those of
Gymnasium-Robotics' MaMuJoCo (`mamujoco_v1`) and Gymnasium's v5 MuJoCo tasks. Joints
are named as in the MuJoCo model; their qpos/qvel/actuator indices are looked up in
the model when an env is made (hapo/envs/layouts.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Clip = tuple[float, float]


@dataclass(frozen=True)
class Span:
    """A run of entries of an mjData field: field[start:stop], optionally clipped."""

    field: str
    start: int = 0
    stop: int | None = None
    clip: Clip | None = None


@dataclass(frozen=True)
class Joint:
    """A node of the joint graph: one actuated joint.

    label: the reference's node label; within one graph distance, an agent observes
        its joints sorted by label.
    joint: the MuJoCo joint name (gives qpos, qvel and the actuator).
    bodies: bodies whose rows of cinert / cvel / cfrc_ext the joint observes.
    """

    label: str
    joint: str
    bodies: tuple[int, ...] = ()


@dataclass(frozen=True)
class Scenario:
    """One task and its multi-agent factorisations.

    task: the C++ task (cpp/env/tasks/) with the reward, termination and reset noise.
    model_file: the Gymnasium asset the task runs on.
    joints: the graph's nodes.
    edges: hyperedges of the joint graph, by label (all members are neighbours).
    partitions: name -> agents -> joint labels, in the reference's agent and action order.
    local_categories: what an agent observes of a joint at graph distance k
        (entry k; the last entry repeats for larger k).
    local_clip: clipping applied to a local category (as the reference's node functions do).
    global_obs: category -> spans every agent observes after its local part.
    state: the single-agent observation of the Gymnasium task, the global state.
    """

    task: str
    model_file: str
    joints: tuple[Joint, ...]
    edges: tuple[tuple[str, ...], ...]
    partitions: dict[str, tuple[tuple[str, ...], ...]]
    local_categories: tuple[tuple[str, ...], ...]
    global_obs: dict[str, tuple[Span, ...]]
    state: tuple[Span, ...]
    local_clip: dict[str, Clip] = field(default_factory=dict)


GLOBAL_CATEGORIES = ("qpos", "qvel")

_cheetah_joints = tuple(
    Joint(name, name) for name in ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
)

# Ant bodies: 1 torso; legs 2-4, 5-7, 8-10, 11-13 (leg, aux, ankle) for hips 1..4.
_ant_joints = (
    Joint("hip4", "hip_4", (1, 11)),
    Joint("ankle4", "ankle_4", (11, 12, 13)),
    Joint("hip1", "hip_1", (1, 2)),
    Joint("ankle1", "ankle_1", (2, 3, 4)),
    Joint("hip2", "hip_2", (1, 5)),
    Joint("ankle2", "ankle_2", (5, 6, 7)),
    Joint("hip3", "hip_3", (1, 8)),
    Joint("ankle3", "ankle_3", (8, 9, 10)),
)

_hopper_joints = tuple(Joint(name, name) for name in ("thigh_joint", "leg_joint", "foot_joint"))

_walker_joints = tuple(
    Joint(name, name)
    for name in (
        "foot_joint",
        "leg_joint",
        "thigh_joint",
        "foot_left_joint",
        "leg_left_joint",
        "thigh_left_joint",
    )
)

# Planar walkers: the root's x position is left out of everything observed.
_planar_globals = {"qpos": (Span("qpos", 1, 3),), "qvel": (Span("qvel", 0, 3),)}

SCENARIOS: dict[str, Scenario] = {
    "HalfCheetah": Scenario(
        task="HalfCheetah",
        model_file="half_cheetah.xml",
        joints=_cheetah_joints,
        edges=(
            ("bfoot", "bshin"),
            ("bshin", "bthigh"),
            ("bthigh", "fthigh"),
            ("fthigh", "fshin"),
            ("fshin", "ffoot"),
        ),
        partitions={
            "2x3": (("bthigh", "bshin", "bfoot"), ("fthigh", "fshin", "ffoot")),
            "6x1": (("bthigh",), ("bshin",), ("bfoot",), ("fthigh",), ("fshin",), ("ffoot",)),
        },
        local_categories=(("qpos", "qvel"), ("qpos",)),
        global_obs=_planar_globals,
        state=(Span("qpos", 1), Span("qvel")),
    ),
    "Ant": Scenario(
        task="Ant",
        model_file="ant.xml",
        joints=_ant_joints,
        edges=(
            ("ankle4", "hip4"),
            ("ankle1", "hip1"),
            ("ankle2", "hip2"),
            ("ankle3", "hip3"),
            ("hip4", "hip1", "hip2", "hip3"),
        ),
        partitions={
            "2x4": (("hip1", "ankle1", "hip2", "ankle2"), ("hip3", "ankle3", "hip4", "ankle4")),
            "2x4d": (("hip1", "ankle1", "hip4", "ankle4"), ("hip2", "ankle2", "hip3", "ankle3")),
            "4x2": (("hip1", "ankle1"), ("hip2", "ankle2"), ("hip3", "ankle3"), ("hip4", "ankle4")),
        },
        local_categories=(("qpos", "qvel", "cfrc_ext"), ("qpos",)),
        local_clip={"cfrc_ext": (-1.0, 1.0)},
        global_obs={"qpos": (Span("qpos", 2, 7),), "qvel": (Span("qvel", 0, 6),)},
        # cfrc_ext of every body but the world.
        state=(Span("qpos", 2), Span("qvel"), Span("cfrc_ext", 6, clip=(-1.0, 1.0))),
    ),
    "Hopper": Scenario(
        task="Hopper",
        model_file="hopper.xml",
        joints=_hopper_joints,
        edges=(("foot_joint", "leg_joint"), ("leg_joint", "thigh_joint")),
        partitions={"3x1": (("thigh_joint",), ("leg_joint",), ("foot_joint",))},
        local_categories=(("qpos", "qvel"), ("qpos",)),
        local_clip={"qvel": (-10.0, 10.0)},
        global_obs={
            "qpos": (Span("qpos", 1, 3),),
            "qvel": (Span("qvel", 0, 3, clip=(-10.0, 10.0)),),
        },
        state=(Span("qpos", 1), Span("qvel", clip=(-10.0, 10.0))),
    ),
    "Walker2d": Scenario(
        task="Walker2d",
        model_file="walker2d_v5.xml",
        joints=_walker_joints,
        edges=(
            ("foot_joint", "leg_joint"),
            ("leg_joint", "thigh_joint"),
            ("foot_left_joint", "leg_left_joint"),
            ("leg_left_joint", "thigh_left_joint"),
            ("thigh_joint", "thigh_left_joint"),
        ),
        partitions={
            "2x3": (
                ("foot_joint", "leg_joint", "thigh_joint"),
                ("foot_left_joint", "leg_left_joint", "thigh_left_joint"),
            )
        },
        local_categories=(("qpos", "qvel"), ("qpos",)),
        global_obs=_planar_globals,
        # The state clips velocities; the per-agent observations do not (as the reference).
        state=(Span("qpos", 1), Span("qvel", clip=(-10.0, 10.0))),
    ),
}
