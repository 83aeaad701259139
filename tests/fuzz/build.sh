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
# The TLS harness: the core's TLS layer (OpenSSL, libuv's uv_once) and a
# self-signed certificate file beside it, made fresh.
"$CC" "${flags[@]}" tests/fuzz/fuzz_tls.c csrc/tls/tls_openssl.c csrc/util/alloc.c \
    -o "$out/fuzz_tls" -lssl -lcrypto -luv
tmp=$(mktemp -d)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
    -days 30 -subj /CN=fuzz >/dev/null 2>&1
cat "$tmp/cert.pem" "$tmp/cert.pem" "$tmp/key.pem" >"$out/fuzz_tls.pem"
rm -rf "$tmp"
echo "$out/fuzz_reader $out/fuzz_wire $out/fuzz_inbox $out/fuzz_tls"
