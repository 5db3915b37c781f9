"""Maps the plugins/ folder to the distinct package name ``metacni_plugins``.

The folder keeps the layout readable; the package name keeps a generic top-level
``plugins`` module out of site-packages.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["metacni", "metacni.*"])
    + ["metacni_plugins"]
    + [f"metacni_plugins.{p}" for p in find_packages("plugins", exclude=["*.tests", "*.tests.*", "tests"])],
    package_dir={"metacni_plugins": "plugins"},
)
