"""Refuse to load hapo._core against a torch or mujoco other than the one it was built with."""

import importlib.metadata

REBUILD = "pip install --force-reinstall --no-deps --no-cache-dir ."


def check_build_versions() -> None:
    """Raise ImportError naming both versions if torch or mujoco changed since the build."""
    from hapo import _build_info

    found = {
        "torch": importlib.metadata.version("torch"),
        "mujoco": importlib.metadata.version("mujoco"),
    }
    built = {"torch": _build_info.TORCH_VERSION, "mujoco": _build_info.MUJOCO_VERSION}
    mismatched = [name for name in built if found[name] != built[name]]
    if mismatched:
        details = "; ".join(
            f"{name} {built[name]} at build time, {found[name]} now" for name in mismatched
        )
        raise ImportError(
            f"hapo._core was built against another version: {details}. "
            f"Rebuild hapo from its source folder with: {REBUILD}"
        )
