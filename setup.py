"""Map the repository's top-level `encoders/` and `tasks/` folders under the `xbench` package.

Everything else lives in pyproject.toml. Only `xbench` is a top-level import name once installed.
"""

from setuptools import find_packages, setup

ROOTS = {"xbench": "xbench", "xbench.encoders": "encoders", "xbench.tasks": "tasks"}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=ROOTS)
