#!/usr/bin/env bash
# After an install: each engine does one real job in a child process (`callagent doctor`).
# If llama.cpp died from a signal (an instruction this CPU or VM cannot run, docs/install.md),
# rebuild llama-cpp-python one instruction-set level lower — once — and check again.
#
#   scripts/self_check.sh [--models PROFILE]
set -uo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$repo_root/.venv/bin"

"$bin/callagent" doctor "$@"
status=$?
if [[ $status -eq 3 ]]; then
    echo "self-check: llama.cpp crashed; rebuilding it for a safer instruction-set level, once" >&2
    "$bin/python" "$repo_root/scripts/build_llama.py" step-down --python "$bin/python" || exit 1
    "$bin/callagent" doctor "$@"
    status=$?
fi
exit $status
