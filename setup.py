"""Build step for portlabel's compiled kernels; everything else is in pyproject.toml.

The kernels are optional: without a C compiler the build goes on without them and their
numpy or Python twins do the same work, slower. portlabel/kernels.py lists them.
"""

import ast
from pathlib import Path

from setuptools import Extension, setup

# the list lives in portlabel/kernels.py; read as text, since the package is not built yet
_KERNELS_PY = Path(__file__).parent / "src" / "portlabel" / "kernels.py"
KERNELS = next(
    ast.literal_eval(node.value)
    for node in ast.parse(_KERNELS_PY.read_text()).body
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "KERNELS"
)


def kernel(name: str) -> Extension:
    """The extension ``portlabel.x._y`` built from ``src/portlabel/x/_y.c``."""
    return Extension(
        name,
        ["src/" + name.replace(".", "/") + ".c"],
        include_dirs=["src/portlabel"],  # kernel.h
        depends=["src/portlabel/kernel.h"],
        extra_compile_args=["-O2", "-std=c11"],
        optional=True,
    )


setup(ext_modules=[kernel(name) for name in KERNELS])
