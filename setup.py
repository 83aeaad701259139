"""setuptools entry point: builds the cffi extension chirp._chirp (see build_chirp.py).

The extension uses only the limited C API (cffi builds it as _chirp.abi3.so),
so the wheel is tagged cp310-abi3: one wheel for CPython 3.10 and later."""

from setuptools import setup

setup(
    cffi_modules=["build_chirp.py:ffibuilder"],
    options={"bdist_wheel": {"py_limited_api": "cp310"}},
)
