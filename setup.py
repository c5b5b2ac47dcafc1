"""Build step for portlabel's compiled kernels; everything else is in pyproject.toml.

The kernels are optional: without a C compiler the build goes on without them and the
vectorised numpy paths do the same work, slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "portlabel.capture._plaindecode",
            ["src/portlabel/capture/_plaindecode.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
        Extension(
            "portlabel.capture._pcapwalk",
            ["src/portlabel/capture/_pcapwalk.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
        Extension(
            "portlabel.capture._pcapngwalk",
            ["src/portlabel/capture/_pcapngwalk.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
        Extension(
            "portlabel.flows._flowkeys",
            ["src/portlabel/flows/_flowkeys.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
        Extension(
            "portlabel.flows._tcptrack",
            ["src/portlabel/flows/_tcptrack.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
        Extension(
            "portlabel.flows._sha1rows",
            ["src/portlabel/flows/_sha1rows.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
        Extension(
            "portlabel.flows._aggregate",
            ["src/portlabel/flows/_aggregate.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
        Extension(
            "portlabel.flows._slotindex",
            ["src/portlabel/flows/_slotindex.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
        Extension(
            "portlabel.flows._flowtext",
            ["src/portlabel/flows/_flowtext.c"],
            extra_compile_args=["-O2", "-std=c11"],
            optional=True,
        ),
    ],
)
