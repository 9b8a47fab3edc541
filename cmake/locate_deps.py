"""Print, as CMake `set()` lines, where the installed torch, mujoco and Eigen live."""

import pathlib

import cmeel
import mujoco
import torch

mujoco_dir = pathlib.Path(mujoco.__file__).parent
libs = sorted(mujoco_dir.glob("libmujoco.so.*"))
if not libs:
    raise SystemExit(f"no libmujoco.so.* in {mujoco_dir}: is the mujoco wheel complete?")
values = {
    "HAPO_TORCH_VERSION": torch.__version__,
    "HAPO_TORCH_CMAKE_PREFIX": torch.utils.cmake_prefix_path,
    "HAPO_MUJOCO_VERSION": mujoco.__version__,
    "HAPO_MUJOCO_INCLUDE": (mujoco_dir / "include").as_posix(),
    "HAPO_MUJOCO_LIBRARY": libs[0].as_posix(),
    "HAPO_EIGEN_PREFIX": (pathlib.Path(cmeel.__file__).parents[1] / "cmeel.prefix").as_posix(),
}
for key, value in values.items():
    print(f'set({key} "{value}")')
