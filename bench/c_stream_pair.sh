#!/bin/bash
# One two-process run of c_stream.c: bench/c_stream_pair.sh EXE [-s] COUNT
# starts "EXE recv", reads its port, runs "EXE send" against it with 64 B
# messages and prints the sender's RESULT line.  Build EXE as c_stream.c's
# header says (e.g. once from each of two commits, to compare them).
set -eu
EXE=$1
MODE=""
if [[ "$2" == "-s" ]]; then MODE=-s; shift; fi
N=$2
coproc R { exec "$EXE" recv $MODE "$N" 60; }
read -r line <&"${R[0]}"
port=${line#READY }
"$EXE" send $MODE "$port" "$N" 64 4096 60 | grep RESULT
wait
