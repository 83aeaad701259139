"""cffi build script (out-of-line API mode): compiles the C core (csrc/)
into chirp._chirp.

Everything cffi declares comes from the public headers themselves (the
bridge API, the testing hooks) and, for the tests, the wire module's:
they are run through the C preprocessor, which expands the error and
option tables, and integer #defines are kept.  There is no copy of a
declaration here to drift from the C.

Set CHIRP_SANITIZE=1 to build the core with AddressSanitizer and
UndefinedBehaviorSanitizer, and CHIRP_DEBUG=1 for an unoptimised build.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import tempfile

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")
INCLUDE_DIRS = [os.path.join(CSRC, "include"), CSRC]
# What Python uses: the bridge API (with chirp_common.h), the testing
# hooks, and the wire format and reader for the tests.
HEADERS = ["chirp_bridge.h", "chirp_testing.h", "wire/wire.h", "wire/reader.h"]
# An integer constant of the core: "#define CH_NAME 16", "(-1)", "0x100".
_INT_DEFINE = re.compile(r"#define (CH_[A-Z0-9_]+) +(\(?-?[0-9]+\)?|0x[0-9a-fA-F]+)\s*$")


def _flags() -> tuple[list[str], list[str]]:
    cflags = ["-std=c99", "-Wall", "-Wextra", "-D_GNU_SOURCE"]
    ldflags: list[str] = []
    if os.environ.get("CHIRP_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
        cflags += san + ["-O1", "-g"]
        ldflags += san
    elif os.environ.get("CHIRP_DEBUG"):
        cflags += ["-O0", "-g"]
    else:
        cflags += ["-O2"]
    return cflags, ldflags


def _sources() -> list[str]:
    """The C core's sources, relative to this file (setuptools wants that)."""
    found = glob.glob(os.path.join(CSRC, "**", "*.c"), recursive=True)
    return sorted(os.path.relpath(p, HERE) for p in found)


def cdef_source() -> str:
    """HEADERS, preprocessed into what cffi's cdef() takes."""
    includes = "".join(f'#include "{h}"\n' for h in HEADERS)
    with tempfile.TemporaryDirectory() as fake:
        # The standard headers they include: cffi knows their types.
        for name in ("stddef.h", "stdint.h"):
            open(os.path.join(fake, name), "w").close()
        cmd = [os.environ.get("CC", "cc"), "-E", "-P", "-dD", "-undef", "-nostdinc"]
        cmd += ["-I", fake] + [f"-I{d}" for d in INCLUDE_DIRS] + ["-x", "c", "-"]
        out = subprocess.run(cmd, input=includes, capture_output=True, text=True, check=True)
    lines = []
    for line in out.stdout.splitlines():
        if line.startswith("#"):
            if _INT_DEFINE.match(line):
                lines.append(line)
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


ffibuilder = FFI()
ffibuilder.cdef(cdef_source())
_cflags, _ldflags = _flags()
ffibuilder.set_source(
    "chirp._chirp",
    "".join(f'#include "{h}"\n' for h in HEADERS),
    sources=_sources(),
    include_dirs=INCLUDE_DIRS,
    libraries=["uv", "ssl", "crypto"],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
