"""hapo: heterogeneous-agent trust region learning (HATRPO, HAPPO) with a C++ core."""

import importlib.metadata

from hapo._version_check import check_build_versions

check_build_versions()

import torch  # noqa: E402,F401  (loads libtorch and its Python types before the extension)

from hapo._core import (  # noqa: E402
    ConjugateGradientResult,
    MlpFisher,
    conjugate_gradient,
    fisher_vector_product,
    gae,
    mujoco_version,
)

__version__ = importlib.metadata.version("hapo")

__all__ = [
    "ConjugateGradientResult",
    "MlpFisher",
    "conjugate_gradient",
    "fisher_vector_product",
    "gae",
    "mujoco_version",
    "__version__",
]
