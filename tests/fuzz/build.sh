#!/usr/bin/env bash
# Build the libFuzzer harnesses of tests/fuzz (clang, ASan + UBSan) into
# DIR (default build/fuzz):  bash tests/fuzz/build.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build/fuzz}
mkdir -p "$out"
CC=${CLANG:-clang}
flags=(-std=c99 -g -O1 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -D_GNU_SOURCE -Icsrc/include -Icsrc -Itests/fuzz)
"$CC" "${flags[@]}" tests/fuzz/fuzz_reader.c csrc/wire/reader.c csrc/wire/wire.c -o "$out/fuzz_reader"
"$CC" "${flags[@]}" tests/fuzz/fuzz_wire.c csrc/wire/wire.c -o "$out/fuzz_wire"
"$CC" "${flags[@]}" tests/fuzz/fuzz_inbox.c csrc/bridge/inbox.c csrc/util/alloc.c -o "$out/fuzz_inbox"
echo "$out/fuzz_reader $out/fuzz_wire $out/fuzz_inbox"
