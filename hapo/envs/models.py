"""MJCF models generated for a number of segments (MaMuJoCo's many-segment tasks).

The physics equals the models Gymnasium-Robotics generates for `ManySegmentSwimmer`
and `ManySegmentAnt`: same bodies in the same tree order, geoms, joints, defaults,
options and actuators. Purely visual elements (textures, materials, lights, cameras)
are left out: they do not change the simulation.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET


def _sub(parent: ET.Element, tag: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, tag, attributes)


def _capsule(body: ET.Element, fromto: str, size: str, **attributes: str) -> None:
    _sub(body, "geom", fromto=fromto, size=size, type="capsule", **attributes)


def _hinge(body: ET.Element, name: str, axis: str, range_: str, **attributes: str) -> None:
    _sub(body, "joint", axis=axis, name=name, pos="0 0 0", range=range_, type="hinge", **attributes)


def _motors(root: ET.Element, joints: list[str], ctrlrange: str) -> None:
    actuators = _sub(root, "actuator")
    for joint in joints:
        _sub(actuators, "motor", ctrllimited="true", ctrlrange=ctrlrange, gear="150", joint=joint)


def many_segment_swimmer(n_segs: int) -> str:
    """Swimmer-v5's swimmer with n_segs actuated hinges rot0 .. rot{n_segs-1} (n_segs >= 2).

    The torso carries the root (two sliders and a hinge) and mid0; every further segment
    hangs one unit behind the previous one; the inner hinges alternate their axis sign.
    """
    if n_segs < 2:
        raise ValueError(f"a many-segment swimmer needs n_segs >= 2, got {n_segs}")
    root = ET.Element("mujoco", model="swimmer")
    _sub(root, "compiler", angle="degree", inertiafromgeom="true")
    _sub(root, "option", density="4000", integrator="RK4", timestep="0.01", viscosity="0.1")
    default = _sub(root, "default")
    _sub(default, "geom", conaffinity="0", condim="1", contype="0")
    _sub(default, "joint", armature="0.1")
    world = _sub(root, "worldbody")
    _sub(world, "geom", condim="3", name="floor", pos="0 0 -0.1", size="40 40 0.1", type="plane")
    torso = _sub(world, "body", name="torso", pos="0 0 0")
    _capsule(torso, "1.5 0 0 0.5 0 0", "0.1", density="1000")
    _sub(torso, "joint", axis="1 0 0", name="slider1", pos="0 0 0", type="slide")
    _sub(torso, "joint", axis="0 1 0", name="slider2", pos="0 0 0", type="slide")
    _sub(torso, "joint", axis="0 0 1", name="rot", pos="0 0 0", type="hinge")
    body = torso
    for i in range(n_segs):
        name = "back" if i == n_segs - 1 else f"mid{i}"
        body = _sub(body, "body", name=name, pos="0.5 0 0" if i == 0 else "-1 0 0")
        _capsule(body, "0 0 0 -1 0 0", "0.1", density="1000")
        sign = 1 if i in (0, n_segs - 1) else (-1) ** (i + 1)
        _hinge(body, f"rot{i}", f"0 0 {sign}", "-100 100", limited="true")
    _motors(root, [f"rot{i}" for i in range(n_segs)], "-1 1")
    return ET.tostring(root, encoding="unicode")


def _ant_leg(parent: ET.Element, names: tuple[str, str], geoms: tuple[str, str, str], joints: tuple[str, str],
             upper: str, direction: str, ankle_axis: str, ankle_range: str) -> None:
    """A leg: an upper part reaching `upper`, the hip, a thigh reaching `direction`, the
    ankle, and a shin reaching twice `direction` (offsets "x y" in the x-y plane)."""
    dx, dy = (float(v) for v in direction.split())
    leg = _sub(parent, "body", name=names[0], pos="0 0 0")
    _capsule(leg, f"0 0 0 {upper} 0", "0.08", name=geoms[0])
    aux = _sub(leg, "body", name=names[1], pos=f"{upper} 0")
    _hinge(aux, joints[0], "0 0 1", "-30 30")
    _capsule(aux, f"0 0 0 {direction} 0", "0.08", name=geoms[1])
    foot = _sub(aux, "body", pos=f"{direction} 0")
    _hinge(foot, joints[1], ankle_axis, ankle_range)
    _capsule(foot, f"0 0 0 {2 * dx:g} {2 * dy:g} 0", "0.08", name=geoms[2])


def many_segment_ant(n_segs: int) -> str:
    """An ant of n_segs two-legged segments (n_segs >= 1) on Ant-v5's physics settings.

    Segment 0 is the free torso with a front-left and a back-right leg; segment s > 0 is
    a torso welded one unit behind segment s-1's (its child, after its legs) with a
    front-right and a back leg. Joints and motors per segment: hip1_s, ankle1_s, hip2_s,
    ankle2_s.
    """
    if n_segs < 1:
        raise ValueError(f"a many-segment ant needs n_segs >= 1, got {n_segs}")
    root = ET.Element("mujoco", model="ant")
    _sub(root, "size", nconmax="200")
    _sub(root, "compiler", angle="degree", inertiafromgeom="true")
    _sub(root, "option", integrator="RK4", timestep="0.01")
    default = _sub(root, "default")
    _sub(default, "joint", armature="1", damping="1", limited="true")
    _sub(default, "geom", conaffinity="0", condim="3", density="5.0", friction="1 0.5 0.5", margin="0.01")
    world = _sub(root, "worldbody")
    _sub(world, "geom", conaffinity="1", condim="3", name="floor", pos="0 0 0", size="40 40 40", type="plane")
    torso = _sub(world, "body", name="torso_0", pos="0 0 0.75")
    _sub(torso, "joint", armature="0", damping="0", limited="false", margin="0.01", name="root",
         pos="0 0 0", type="free")
    _ant_leg(torso, ("front_left_leg_0", "aux1_0"), ("aux1_geom_0", "left_leg_geom_0", "left_ankle_geom_0"),
             ("hip1_0", "ankle1_0"), "0.2 0.2", "0.2 0.2", "-1 1 0", "30 70")
    _ant_leg(torso, ("right_back_leg_0", "aux2_0"), ("aux2_geom_0", "rightback_leg_geom_0", "second_ankle_geom_0"),
             ("hip2_0", "ankle2_0"), "0.2 -0.2", "0.2 -0.2", "1 1 0", "30 70")
    for s in range(1, n_segs):
        torso = _sub(torso, "body", name=f"torso_{s}", pos="-1 0 0")
        _capsule(torso, "1 0 0 0 0 0", "0.1", density="100")
        _ant_leg(torso, (f"front_right_leg_{s}", f"aux_2_{s}"),
                 (f"aux1_geom_{s}", f"right_leg_geom_{s}", f"right_ankle_geom_{s}"),
                 (f"hip1_{s}", f"ankle1_{s}"), "0 0.2", "-0.2 0.2", "1 1 0", "-70 -30")
        _ant_leg(torso, (f"back_leg_{s}", f"aux2_{s}"),
                 (f"aux2_geom_{s}", f"back_leg_geom_{s}", f"third_ankle_geom_{s}"),
                 (f"hip2_{s}", f"ankle2_{s}"), "0 -0.2", "-0.2 -0.2", "-1 1 0", "-70 -30")
    _motors(root, [f"{j}_{s}" for s in range(n_segs) for j in ("hip1", "ankle1", "hip2", "ankle2")], "-1.0 1.0")
    return ET.tostring(root, encoding="unicode")
