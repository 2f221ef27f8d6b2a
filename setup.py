"""Build the pygamesvc._core extension from csrc/ and csrc/core/."""

import glob
import os

from setuptools import Extension, setup


def _sources():
    # Sorted so that builds are reproducible; paths stay relative to setup.py
    # because setuptools rejects absolute source paths in an sdist build.
    found = glob.glob("csrc/*.c") + glob.glob("csrc/core/*.c")
    return sorted(found)


extra_compile_args = ["-std=c11", "-Wall", "-Wextra", "-O2"]
if os.environ.get("PYGAMESVC_CFLAGS"):
    extra_compile_args += os.environ["PYGAMESVC_CFLAGS"].split()
extra_link_args = ["-pthread"]
if os.environ.get("PYGAMESVC_LDFLAGS"):
    extra_link_args += os.environ["PYGAMESVC_LDFLAGS"].split()

setup(
    ext_modules=[
        Extension(
            "pygamesvc._core",
            sources=_sources(),
            include_dirs=["csrc", "csrc/core"],
            # The core is C11 plus POSIX; pyconfig.h defines this one too.
            define_macros=[("_GNU_SOURCE", "1")],
            depends=sorted(glob.glob("csrc/*.h") + glob.glob("csrc/core/*.h")),
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
        )
    ],
)
