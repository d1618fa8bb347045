#!/usr/bin/env bash
# Download the wheels that benchmarks/gpu_check.sh needs on the GPU machine into .whl/ (git-ignored).
#
#   benchmarks/gpu_wheels.sh            # run where pip reaches PyPI; then carry .whl with the working tree
#
# The GPU machine (see /work/.library/device/KINDS.md) has Python 3.12 with torch, torchvision, transformers,
# timm, accelerate, h5py, safetensors, huggingface-hub, rich, click, numpy, pillow and matplotlib installed,
# and no network. dsc also needs diffusers, pydantic(-settings) and a recent typer; these and their missing
# requirements are fetched here, for CPython 3.12 on manylinux x86_64, at the versions of this checkout's
# .venv (so the GPU check runs what the tests ran). One version of each, --no-deps: every needed one is named.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-.venv/bin/python}
[[ -x "$PY" ]] || PY=python3
DEST=${1:-.whl}

# name -> version installed here (fallback pins when a package is missing from this environment)
declare -A FALLBACK=(
    [diffusers]=0.42.1 [pydantic]=2.14.4 [pydantic-core]=2.50.5 [pydantic-settings]=2.16.3
    [annotated-types]=0.8.0 [typing-inspection]=0.4.5 [typing-extensions]=4.16.0 [python-dotenv]=1.2.4
    [importlib-metadata]=10.2.0 [typer]=0.29.2
)
PACKAGES=(diffusers pydantic pydantic-core pydantic-settings annotated-types typing-inspection typing-extensions
          python-dotenv importlib-metadata typer)

version() {
    "$PY" -c "import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: print('')" "$1"
}

mkdir -p "$DEST"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || grep -qx '.whl/' .gitignore 2>/dev/null \
    || echo '/.whl/' >> .git/info/exclude
rm -f "$DEST"/*.whl
specs=()
for name in "${PACKAGES[@]}"; do
    v=$(version "$name")
    specs+=("$name==${v:-${FALLBACK[$name]}}")
done
echo "downloading into $DEST: ${specs[*]}"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${specs[@]}"
ls -1 "$DEST"
du -sh "$DEST"
