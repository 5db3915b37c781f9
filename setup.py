"""Maps the plugins/ folder to the distinct package name ``metacni_plugins``, and compiles the
static binDir shim (shim/metacni-shim.c) into the package as ``metacni/_shim/metacni-shim``.

The folder keeps the layout readable; the package name keeps a generic top-level
``plugins`` module out of site-packages.

The shim is built by ``make -C shim`` (gcc with a static libc: libc6-dev). A wheel gets it in its
build directory; an editable install (``pip install -e .``) gets it in the source tree, where
:func:`metacni.shimbin.path` looks first. Set ``METACNI_SKIP_SHIM=1`` to build without it (the
package then works everywhere except where it installs the shim; ``metacni.shimbin.path`` says so).
"""

import os
import subprocess
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parent


class BuildWithShim(build_py):
    """build_py, plus the static shim compiled into ``metacni/_shim/``."""

    def run(self) -> None:
        super().run()
        if os.environ.get("METACNI_SKIP_SHIM"):
            return
        # Editable installs import the package from the source tree, so the shim goes there;
        # a wheel build takes it from build_lib.
        targets = [ROOT / "metacni" / "_shim"]
        if not getattr(self, "editable_mode", False):
            targets.append(Path(self.build_lib).resolve() / "metacni" / "_shim")
        for out in targets:
            subprocess.run(["make", "-s", "-C", str(ROOT / "shim"), f"OUT={out}"], check=True)


class BinaryDistribution(Distribution):
    """The wheel holds a native executable: tag it for the platform, not ``py3-none-any``."""

    def has_ext_modules(self) -> bool:
        return True


setup(
    distclass=BinaryDistribution,
    packages=find_packages(include=["metacni", "metacni.*"])
    + ["metacni_plugins"]
    + [f"metacni_plugins.{p}" for p in find_packages("plugins", exclude=["*.tests", "*.tests.*", "tests"])],
    package_dir={"metacni_plugins": "plugins"},
    cmdclass={"build_py": BuildWithShim},
)
