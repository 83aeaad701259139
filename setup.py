"""setuptools entry point: builds the cffi extension chirp._chirp (see build_chirp.py)."""

from setuptools import setup

setup(cffi_modules=["build_chirp.py:ffibuilder"])
