"""Build step for portlabel's compiled kernels; everything else is in pyproject.toml.

The kernels are optional: without a C compiler the build goes on without them and their
numpy or Python twins do the same work, slower (portlabel/kernels.py lists them; a test
checks that list against this one).
"""

from setuptools import Extension, setup

KERNELS = (
    "portlabel.capture._plaindecode",
    "portlabel.capture._pcapwalk",
    "portlabel.capture._pcapngwalk",
    "portlabel.flows._flowkeys",
    "portlabel.flows._tcptrack",
    "portlabel.flows._sha1rows",
    "portlabel.flows._aggregate",
    "portlabel.flows._slotindex",
    "portlabel.flows._flowtext",
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
