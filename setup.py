"""setuptools hook for the cffi-built C core; metadata lives in pyproject.toml."""
from setuptools import setup

setup(cffi_modules=["native/build_cffi.py:ffibuilder"])
