"""Scenarios as data: joint graphs, agent partitions and observation layouts.

The facts (which joints form each agent, in which order, which joints neighbour
which, what each joint and the global part of an observation contain) are those of
Gymnasium-Robotics' MaMuJoCo (`mamujoco_v1`) and Gymnasium's v5 MuJoCo tasks. Joints
are named as in the MuJoCo model; their qpos/qvel/actuator indices are looked up in
the model when an env is made (hapo/envs/layouts.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hapo.envs import models

Clip = tuple[float, float]


@dataclass(frozen=True)
class Span:
    """A run of entries of an mjData field: op(field[start:stop]), optionally clipped.

    op is "copy", "sin", "cos", or "diff": field[start + i] - field[other + i].
    field is an mjData field; "ten_J" is indexed as the dense (ntendon x nv) tendon
    Jacobian the reference reads (MuJoCo stores it sparse).
    """

    field: str
    start: int = 0
    stop: int | None = None
    clip: Clip | None = None
    op: str = "copy"
    other: int = 0


@dataclass(frozen=True)
class Joint:
    """A node of the joint graph: one actuated joint.

    label: the reference's node label; within one graph distance, an agent observes
        its joints sorted by label.
    joint: the MuJoCo joint whose actuator the node drives.
    bodies: bodies whose rows of cinert / cvel / cfrc_ext the joint observes.
    observes: where the node's qpos, qvel and qfrc_actuator entries are read when the
        reference reads them elsewhere than at `joint`: another joint's name, or one
        index into both qpos and qvel (negative counts from the end, as the reference's
        nodes do). Humanoid's abdomen_y and abdomen_z nodes observe each other's joint;
        ManySegmentAnt's nodes index from the wrong end for all but the last segment.
    obs: what a category gives for this node when not its own entry (Swimmer's qvel
        pairs, Reacher's sin/cos and fingertip offset).
    sort_label: the label the reference sorts by, when two nodes share one
        (ManySegmentAnt's edges between segments hold copies of the previous segment's hips).
    """

    label: str
    joint: str
    bodies: tuple[int, ...] = ()
    observes: str | int | None = None
    obs: dict[str, tuple[Span, ...]] = field(default_factory=dict)
    sort_label: str | None = None

    @property
    def order(self) -> str:
        return self.label if self.sort_label is None else self.sort_label


@dataclass(frozen=True)
class Scenario:
    """One task and its multi-agent factorisations.

    task: the C++ task (cpp/env/tasks/) with the reward, termination and reset noise.
    model_file: the Gymnasium asset the task runs on; model_xml: the MJCF text instead,
        for models generated for a size (hapo/envs/models.py).
    joints: the graph's nodes.
    edges: hyperedges of the joint graph, by label (all members are neighbours).
    partitions: name -> agents -> joint labels, in the reference's agent and action order.
    local_categories: what an agent observes of a joint at graph distance k
        (entry k; the last entry repeats for larger k).
    local_clip: clipping applied to a local category (as the reference's node functions do).
    global_obs: category -> spans every agent observes after its local part.
    state: the single-agent observation of the Gymnasium task, the global state.
    max_episode_steps: Gymnasium's time limit of the task.
    model_assets: (package, folder inside it) where model_file ships.
    """

    task: str
    model_file: str | None
    joints: tuple[Joint, ...]
    edges: tuple[tuple[str, ...], ...]
    partitions: dict[str, tuple[tuple[str, ...], ...]]
    local_categories: tuple[tuple[str, ...], ...]
    global_obs: dict[str, tuple[Span, ...]]
    state: tuple[Span, ...]
    local_clip: dict[str, Clip] = field(default_factory=dict)
    max_episode_steps: int = 1000
    model_xml: str | None = None
    model_assets: tuple[str, str] = ("gymnasium", "envs/mujoco/assets")


GLOBAL_CATEGORIES = ("qpos", "qvel")
MAMUJOCO_ASSETS = ("gymnasium_robotics", "envs/multiagent_mujoco/assets")


def _entries(field: str, *indices: int) -> tuple[Span, ...]:
    """Single entries of a field, in the given order."""
    return tuple(Span(field, i, i + 1) for i in indices)


_CHEETAH_PARTS = ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")
_CHEETAH_EDGES = (("bfoot", "bshin"), ("bshin", "bthigh"), ("bthigh", "fthigh"), ("fthigh", "fshin"), ("fshin", "ffoot"))
_cheetah_joints = tuple(Joint(name, name) for name in _CHEETAH_PARTS)

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
        edges=_CHEETAH_EDGES,
        partitions={
            "2x3": (("bthigh", "bshin", "bfoot"), ("fthigh", "fshin", "ffoot")),
            "6x1": (("bthigh",), ("bshin",), ("bfoot",), ("fthigh",), ("fshin",), ("ffoot",)),
            # The paper's partitions not in mamujoco_v1 (as the HAPPO/HATRPO experiments grouped them).
            "3x2": (("bfoot", "bshin"), ("bthigh", "ffoot"), ("fshin", "fthigh")),
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
            "8x1": tuple((label,) for label in ("hip1", "ankle1", "hip2", "ankle2", "hip3", "ankle3", "hip4", "ankle4")),
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
            ),
            "6x1": tuple((j.label,) for j in _walker_joints),
            "3x2": (
                ("foot_joint", "leg_joint"),
                ("thigh_joint", "foot_left_joint"),
                ("leg_left_joint", "thigh_left_joint"),
            ),
        },
        local_categories=(("qpos", "qvel"), ("qpos",)),
        global_obs=_planar_globals,
        # The state clips velocities; the per-agent observations do not (as the reference).
        state=(Span("qpos", 1), Span("qvel", clip=(-10.0, 10.0))),
    ),
}

# Humanoid bodies: 1 torso, 2 lwaist, 3 pelvis, 4-6 right thigh/shin/foot, 7-9 left
# thigh/shin/foot, 10-11 right upper/lower arm, 12-13 left upper/lower arm.
_humanoid_joints = (
    Joint("abdomen_y", "abdomen_y", (1, 2, 3), observes="abdomen_z"),
    Joint("abdomen_z", "abdomen_z", (1, 2, 3), observes="abdomen_y"),
    Joint("abdomen_x", "abdomen_x", (3, 4, 7)),
    Joint("right_hip_x", "right_hip_x", (4, 5)),
    Joint("right_hip_z", "right_hip_z", (4, 5)),
    Joint("right_hip_y", "right_hip_y", (4, 5)),
    Joint("right_knee", "right_knee", (5, 6)),
    Joint("left_hip_x", "left_hip_x", (7, 8)),
    Joint("left_hip_z", "left_hip_z", (7, 8)),
    Joint("left_hip_y", "left_hip_y", (7, 8)),
    Joint("left_knee", "left_knee", (8, 9)),
    Joint("right_shoulder1", "right_shoulder1", (1, 10, 11)),
    Joint("right_shoulder2", "right_shoulder2", (1, 10, 11)),
    Joint("right_elbow", "right_elbow", (11,)),
    Joint("left_shoulder1", "left_shoulder1", (1, 12, 13)),
    Joint("left_shoulder2", "left_shoulder2", (1, 12, 13)),
    Joint("left_elbow", "left_elbow", (13,)),
)
_abdomen = ("abdomen_x", "abdomen_y", "abdomen_z")
_right_hip = ("right_hip_x", "right_hip_y", "right_hip_z")
_left_hip = ("left_hip_x", "left_hip_y", "left_hip_z")


def _humanoid(task: str, model_file: str) -> Scenario:
    """Humanoid and HumanoidStandup: same body, graph and observation (v5, all parts included)."""
    return Scenario(
        task=task,
        model_file=model_file,
        joints=_humanoid_joints,
        edges=(
            _abdomen,
            _right_hip,
            _left_hip,
            ("left_elbow", "left_shoulder1", "left_shoulder2"),
            ("right_elbow", "right_shoulder1", "right_shoulder2"),
            ("left_knee", *_left_hip),
            ("right_knee", *_right_hip),
            ("left_shoulder1", "left_shoulder2", *_abdomen),
            ("right_shoulder1", "right_shoulder2", *_abdomen),
            (*_abdomen, *_left_hip),
            (*_abdomen, *_right_hip),
        ),
        partitions={
            "9|8": (
                (*_abdomen, "right_shoulder1", "right_shoulder2", "right_elbow",
                 "left_shoulder1", "left_shoulder2", "left_elbow"),
                (*_right_hip, "right_knee", *_left_hip, "left_knee"),
            ),
            "17x1": tuple(
                (label,)
                for label in (
                    "left_shoulder1", "left_shoulder2", "abdomen_x", "abdomen_y", "abdomen_z",
                    "right_shoulder1", "right_shoulder2", "right_elbow", "left_elbow",
                    "left_hip_x", "left_hip_y", "left_hip_z", "right_hip_x", "right_hip_y",
                    "right_hip_z", "right_knee", "left_knee",
                )
            ),
        },
        local_categories=(("qpos", "qvel", "cinert", "cvel", "qfrc_actuator", "cfrc_ext"), ("qpos",)),
        global_obs={"qpos": (Span("qpos", 2, 7),), "qvel": (Span("qvel", 0, 6),)},
        # v5: qpos without x, y; then every body's but the world's cinert, cvel and
        # cfrc_ext, and the actuated joints' qfrc_actuator.
        state=(
            Span("qpos", 2),
            Span("qvel"),
            Span("cinert", 10),
            Span("cvel", 6),
            Span("qfrc_actuator", 6),
            Span("cfrc_ext", 6),
        ),
    )


SCENARIOS["Humanoid"] = _humanoid("Humanoid", "humanoid.xml")
SCENARIOS["HumanoidStandup"] = _humanoid("HumanoidStandup", "humanoidstandup.xml")

SCENARIOS["Swimmer"] = Scenario(
    task="Swimmer",
    model_file="swimmer.xml",
    # The reference's nodes rot2/rot3 observe, as their velocity, the root's x and y
    # velocity beside their own.
    joints=(
        Joint("rot2", "motor1_rot", obs={"qvel": (Span("qvel", 0, 1), Span("qvel", 3, 4))}),
        Joint("rot3", "motor2_rot", obs={"qvel": (Span("qvel", 1, 2), Span("qvel", 4, 5))}),
    ),
    edges=(("rot2", "rot3"),),
    partitions={"2x1": (("rot2",), ("rot3",))},
    local_categories=(("qpos", "qvel"), ("qpos",)),
    global_obs={"qpos": (Span("qpos", 2, 3),), "qvel": (Span("qvel", 2, 3),)},
    state=(Span("qpos", 2), Span("qvel")),
)

# Reacher bodies: 1 body0, 2 body1, 3 fingertip, 4 target (xpos rows of 3).
_FINGERTIP, _TARGET = 3, 4
SCENARIOS["Reacher"] = Scenario(
    task="Reacher",
    model_file="reacher.xml",
    joints=(
        Joint("joint0", "joint0", (1, 2),
              obs={"qpos": (Span("qpos", 0, 1, op="sin"), Span("qpos", 0, 1, op="cos"))}),
        Joint("joint1", "joint1", (2, 3),
              obs={
                  "qpos": (Span("qpos", 1, 2, op="sin"), Span("qpos", 1, 2, op="cos")),
                  "fingertip_dist": (Span("xpos", 3 * _FINGERTIP, 3 * _FINGERTIP + 3, op="diff", other=3 * _TARGET),),
              }),
    ),
    edges=(("joint0", "joint1"),),
    partitions={"2x1": (("joint0",), ("joint1",))},
    local_categories=(("qpos", "qvel", "fingertip_dist"), ("qpos",)),
    # The target's position; its velocity (always zero) is not observed.
    global_obs={"qpos": (Span("qpos", 2, 4),)},
    state=(
        Span("qpos", 0, 2, op="cos"),
        Span("qpos", 0, 2, op="sin"),
        Span("qpos", 2),
        Span("qvel", 0, 2),
        Span("xpos", 3 * _FINGERTIP, 3 * _FINGERTIP + 2, op="diff", other=3 * _TARGET),
    ),
    max_episode_steps=50,
)


# Pusher bodies: 10 tips_arm, 11 object, 12 goal (xpos rows of 3).
_TIPS_ARM = 10
_pusher_arm = (
    "r_shoulder_pan_joint", "r_shoulder_lift_joint", "r_upper_arm_roll_joint", "r_elbow_flex_joint",
    "r_forearm_roll_joint", "r_wrist_flex_joint", "r_wrist_roll_joint",
)
SCENARIOS["Pusher"] = Scenario(
    task="Pusher",
    model_file="pusher_v5.xml",
    # The reference labels its shoulder pan and shoulder lift nodes "r_wrist_roll_joint",
    # and sorts by label: they sort as the wrist roll joint. Between nodes of one label its
    # order is that of a Python set of objects hashed by address, which changes from run
    # to run; ours is by joint name.
    joints=tuple(
        Joint(name, name, sort_label="r_wrist_roll_joint" if name in _pusher_arm[:2] else None)
        for name in _pusher_arm
    ),
    edges=tuple(zip(_pusher_arm, _pusher_arm[1:])),
    partitions={"3p": (_pusher_arm[:3], _pusher_arm[3:4], _pusher_arm[4:])},
    local_categories=(("qpos", "qvel"), ("qpos",)),
    # The arm's tip, the object and the goal: their positions, under the reference's
    # category "qpos".
    global_obs={"qpos": (Span("xpos", 3 * _TIPS_ARM, 3 * _TIPS_ARM + 9),)},
    state=(Span("qpos", 0, 7), Span("qvel", 0, 7), Span("xpos", 3 * _TIPS_ARM, 3 * _TIPS_ARM + 9)),
    max_episode_steps=100,
)

# The tendon's length, velocity and Jacobian entries on each cheetah's root slides
# (rootx, rootz: dofs 0-1 and 9-10).
_tendon = {
    "ten_J": (Span("ten_J", 0, 2), Span("ten_J", 9, 11)),
    "ten_length": (Span("ten_length", 0, 1),),
    "ten_velocity": (Span("ten_velocity", 0, 1),),
}


def _coupled_cheetah(c: int) -> tuple[Joint, ...]:
    """Cheetah c's nodes. As the reference's, both cheetahs' nodes observe qpos[-6:] and
    qvel[-6:], the second cheetah's joints; each back thigh observes the tendon."""
    return tuple(
        Joint(f"{part}{c}", f"{part}{c}", observes=i - 6, obs=_tendon if part == "bthigh" else {})
        for i, part in enumerate(_CHEETAH_PARTS)
    )


def _cheetah_edges(c: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"{a}{c}", f"{b}{c}") for a, b in _CHEETAH_EDGES)


SCENARIOS["CoupledHalfCheetah"] = Scenario(
    task="CoupledHalfCheetah",
    model_file="coupled_half_cheetah.xml",
    model_assets=MAMUJOCO_ASSETS,
    joints=_coupled_cheetah(0) + _coupled_cheetah(1),
    edges=_cheetah_edges(0) + _cheetah_edges(1),
    partitions={"1p1": tuple(tuple(f"{part}{c}" for part in _CHEETAH_PARTS) for c in (0, 1))},
    local_categories=(("qpos", "qvel", "ten_J", "ten_length", "ten_velocity"), ("qpos",)),
    # Each cheetah's root without its x position, angle (rooty) before height (rootz).
    global_obs={"qpos": _entries("qpos", 2, 1, 11, 10), "qvel": _entries("qvel", 0, 2, 1, 9, 11, 10)},
    state=(Span("qpos", 1, 9), Span("qpos", 10, 18), Span("qvel"), *_tendon["ten_J"], Span("ten_length"), Span("ten_velocity")),
)


def _single_agent(task: str, model_file: str, state: tuple[Span, ...]) -> Scenario:
    """A task mamujoco_v1 runs as one agent only (agent_conf None): no joint graph."""
    return Scenario(task, model_file, joints=(), edges=(), partitions={}, local_categories=(), global_obs={}, state=state)


SCENARIOS["InvertedPendulum"] = _single_agent("InvertedPendulum", "inverted_pendulum.xml", (Span("qpos"), Span("qvel")))
SCENARIOS["InvertedDoublePendulum"] = _single_agent(
    "InvertedDoublePendulum",
    "inverted_double_pendulum.xml",
    (
        Span("qpos", 0, 1),
        Span("qpos", 1, op="sin"),
        Span("qpos", 1, op="cos"),
        Span("qvel", clip=(-10.0, 10.0)),
        Span("qfrc_constraint", 0, 1, clip=(-10.0, 10.0)),
    ),
)


def _parse_segments(scenario: str, partition: str | None) -> tuple[int, int]:
    """(agents, segments per agent) of a partition "AxS"."""
    agents, _, per_agent = (partition or "").partition("x")
    if not (agents.isdigit() and per_agent.isdigit() and int(agents) >= 1 and int(per_agent) >= 1):
        raise ValueError(
            f"unknown partition {partition!r} for {scenario}, expected 'AxS' (A agents of S "
            f"segments each, e.g. {', '.join(LISTED_PARTITIONS[scenario])})"
        )
    return int(agents), int(per_agent)


def _many_segment_swimmer(agents: int, per_agent: int) -> Scenario:
    """A chain of agents * per_agent hinges rot0, rot1, ...; each agent drives consecutive ones."""
    n = agents * per_agent
    if n < 2:
        raise ValueError(f"ManySegmentSwimmer needs at least 2 segments, got {agents}x{per_agent}")
    labels = [f"rot{i}" for i in range(n)]
    return Scenario(
        task="Swimmer",
        model_file=None,
        model_xml=models.many_segment_swimmer(n),
        joints=tuple(Joint(label, label) for label in labels),
        edges=tuple(zip(labels, labels[1:])),
        partitions={f"{agents}x{per_agent}": tuple(tuple(labels[a * per_agent:(a + 1) * per_agent]) for a in range(agents))},
        local_categories=(("qpos", "qvel"), ("qpos",)),
        global_obs={},
        state=(Span("qpos", 2), Span("qvel")),
    )


def _many_segment_ant(agents: int, per_agent: int) -> Scenario:
    """A chain of agents * per_agent two-legged ant segments; each agent drives consecutive ones.

    Facts of the reference kept as they are: node hip1_s drives segment s's second
    motor (hip2_s) and so on around the segment; all but the last segment's nodes read
    qpos/qvel at indices counted from the front; the edge to the previous segment holds
    copies of its hips, so the graph is only walked backwards, one step.
    """
    n = agents * per_agent
    joints: list[Joint] = []
    edges: list[tuple[str, ...]] = []
    segments = []
    for s in range(n):
        torso = 1 + 7 * s
        first_leg, second_leg = (torso + 1, torso + 2, torso + 3), (torso + 4, torso + 5, torso + 6)
        start = 4 * (n - 1 - s) - 4
        nodes = (
            Joint(f"hip1_{s}", f"hip2_{s}", (torso, first_leg[0]), observes=start),
            Joint(f"ankle1_{s}", f"ankle2_{s}", first_leg, observes=start + 1),
            Joint(f"hip2_{s}", f"hip1_{s}", (torso, second_leg[0]), observes=start + 2),
            Joint(f"ankle2_{s}", f"ankle1_{s}", second_leg, observes=start + 3),
        )
        hip1, ankle1, hip2, ankle2 = (j.label for j in nodes)
        joints += nodes
        edges += [(ankle1, hip1), (ankle2, hip2), (hip1, hip2)]
        if s:
            copies = [replace(j, label=j.label + "'", sort_label=j.label) for j in segments[-1][::2]]
            joints += copies
            edges.append((*(c.label for c in copies), hip1, hip2))
        segments.append(nodes)
    return Scenario(
        task="Ant",
        model_file=None,
        model_xml=models.many_segment_ant(n),
        joints=tuple(joints),
        edges=tuple(edges),
        partitions={
            f"{agents}x{per_agent}": tuple(
                tuple(j.label for seg in segments[a * per_agent:(a + 1) * per_agent] for j in seg) for a in range(agents)
            )
        },
        local_categories=(("qpos", "qvel", "cfrc_ext"), ("qpos",)),
        local_clip={"cfrc_ext": (-1.0, 1.0)},
        global_obs={"qpos": (Span("qpos", 2, 7),), "qvel": (Span("qvel", 0, 6),)},
        state=(Span("qpos", 2), Span("qvel"), Span("cfrc_ext", 6, clip=(-1.0, 1.0))),
    )


# Scenarios whose model is generated for the partition's number of segments.
GENERATED: dict[str, Callable[[int, int], Scenario]] = {
    "ManySegmentSwimmer": _many_segment_swimmer,
    "ManySegmentAnt": _many_segment_ant,
}
# Their partitions that list_tasks() shows; any "AxS" is accepted.
LISTED_PARTITIONS: dict[str, tuple[str, ...]] = {
    "ManySegmentSwimmer": ("10x2", "4x2", "6x1"),
    "ManySegmentAnt": ("2x3", "3x1", "6x1"),
}


def scenario_names() -> list[str]:
    return sorted([*SCENARIOS, *GENERATED])


def get_scenario(scenario: str, partition: str | None) -> Scenario:
    """The scenario data for a partition; ValueError naming the valid choices if unknown."""
    if scenario in GENERATED:
        return GENERATED[scenario](*_parse_segments(scenario, partition))
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}, expected one of: {', '.join(scenario_names())}")
    spec = SCENARIOS[scenario]
    if partition is not None and not spec.partitions:
        raise ValueError(f"{scenario} has one agent only (mamujoco_v1 splits it no further): partition must be None, got {partition!r}")
    if partition is not None and partition not in spec.partitions:
        valid = ", ".join(sorted(spec.partitions))
        raise ValueError(f"unknown partition {partition!r} for {scenario}, expected one of: {valid} (or None)")
    return spec
