# setup.py exists only to name the cffi extension; everything else is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["lfafs/_native_build.py:ffibuilder"])
