"""Types of the cffi extension (built by build_chirp.py): untyped handles."""

from typing import Any

ffi: Any
lib: Any
