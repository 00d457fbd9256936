# cffi cannot yet be configured from pyproject.toml alone; this hooks build_tape.py in.
from setuptools import setup

setup(cffi_modules=["build_tape.py:ffibuilder"])
