#!/usr/bin/env bash
# dsc's GPU check: full-size (random-weight) Stable Diffusion 1.5 generation in fp16/bf16 at 512 px against
# one stock pipeline call per image, `dsc pretrain` throughput (resnet50, 224 px, AMP, channels_last), and a
# 2-process run when the machine has 2 GPUs. Nothing is downloaded. Results: $OUT/gpu_check.json (else
# ./gpu-check-out/), rewritten after every step, and gpu_check.log beside it.
#
#   benchmarks/gpu_check.sh            # full: under 8 minutes on one H100
#   benchmarks/gpu_check.sh --quick    # under 90 s on one H100 (batch 1 and 8, short pretrain)
#   benchmarks/gpu_check.sh --dry-run  # CPU, tiny models: every code path, figures meaningless
#
# Python: $PYTHON, else ./.venv/bin/python when present, else python3. Missing packages (diffusers,
# pydantic-settings, ...) are installed from .whl/ (made by benchmarks/gpu_wheels.sh) into a temporary
# folder put on PYTHONPATH; dsc itself is used from this working tree (no pip install, no network).
# Without a CUDA device (and without --dry-run) it prints a note, writes {"status": "skipped"} and exits 0.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
OUTDIR=${OUT:-$REPO/gpu-check-out}
mkdir -p "$OUTDIR"
SITE=${DSC_GPU_SITE:-/tmp/dsc-gpu-site}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
export DSC_CACHE_DIR=${DSC_CACHE_DIR:-/tmp/dsc-gpu-cache}

if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=$REPO/.venv/bin/python
else PY=python3; fi

say() { echo "[gpu_check.sh $(date -u +%H:%M:%S)] $*"; }
skip() {  # a clean skip: a note, a JSON file, exit 0
    say "skipped: $1"
    printf '{"schema": "dsc-gpu-check/1", "status": "skipped", "skipped": "%s"}\n' "$1" > "$OUTDIR/gpu_check.json"
    exit 0
}

dry=0
for a in "$@"; do [[ "$a" == "--dry-run" ]] && dry=1; done

# one interpreter start for torch and the device (each `import torch` costs seconds)
set +e
"$PY" - "$dry" <<'EOF'
import sys
try:
    import torch
except ImportError:
    sys.exit(3)
n = torch.cuda.device_count() if torch.cuda.is_available() else 0
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", n,
      *(torch.cuda.get_device_name(i) for i in range(n)))
sys.exit(0 if n or sys.argv[1] == "1" else 4)
EOF
rc=$?
set -e
[[ $rc == 3 ]] && skip "no PyTorch for $PY"
[[ $rc == 4 ]] && skip "no CUDA device (use --dry-run to exercise the code paths on the CPU)"
[[ $rc != 0 ]] && { say "checking torch failed ($rc)"; exit 1; }

# 1. packages missing here come from .whl/ (only then: wheels are built for the GPU machine's Python)
need='import importlib.util as u, sys
missing = [m for m in ("diffusers", "transformers", "timm", "accelerate", "h5py", "safetensors",
                       "pydantic", "pydantic_settings", "typer", "rich", "PIL") if u.find_spec(m) is None]
print(" ".join(missing)); sys.exit(1 if missing else 0)'
if ! missing=$("$PY" -c "$need"); then
    if compgen -G ".whl/*.whl" > /dev/null; then
        say "missing here: $missing; installing $(ls .whl/*.whl | wc -l) carried wheels into $SITE"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --disable-pip-version-check --root-user-action=ignore --target "$SITE" .whl/*.whl
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    fi
    if ! missing=$("$PY" -c "$need"); then
        say "missing Python packages ($missing) and no usable .whl/: run benchmarks/gpu_wheels.sh where pip works"
        printf '{"schema": "dsc-gpu-check/1", "status": "failed", "errors": ["missing packages: %s"]}\n' "$missing" \
            > "$OUTDIR/gpu_check.json"
        exit 1
    fi
fi

# 2. dsc from this working tree (first on PYTHONPATH); when no installed dsc declares its entry points
#    (plugins), a small .dist-info does. Checked from a neutral folder: the current one would hide it.
export PYTHONPATH="$REPO:$REPO/plugins${PYTHONPATH:+:$PYTHONPATH}"
if ! (cd / && "$PY" -c "import importlib.metadata as m, dsc; m.version('dsc')" 2>/dev/null); then
    mkdir -p "$SITE"
    "$PY" - "$REPO" "$SITE" <<'EOF'
import sys, tomllib
from pathlib import Path

repo, site = Path(sys.argv[1]), Path(sys.argv[2])
project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
version = next(line.split('"')[1] for line in (repo / "dsc" / "__init__.py").read_text().splitlines()
               if line.startswith("__version__"))
info = site / f"dsc-{version}.dist-info"
info.mkdir(parents=True, exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: dsc\nVersion: {version}\n")
groups = dict(project.get("entry-points", {}))
groups["console_scripts"] = project.get("scripts", {})
(info / "entry_points.txt").write_text("".join(
    f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in items.items()) + "\n" for group, items in groups.items()))
(info / "top_level.txt").write_text("dsc\ndsc_datasets\ndsc_backbones\ndsc_augmenters\n")
EOF
    export PYTHONPATH="$SITE:$PYTHONPATH"
fi
(cd / && "$PY" -c "import dsc, importlib.metadata as m; print('dsc', m.version('dsc'), 'from', dsc.__file__)")

# 3. the check itself; its exit code is the script's (0 ok, 1 a check failed)
say "running benchmarks/gpu_check.py $* (results in $OUTDIR)"
"$PY" benchmarks/gpu_check.py --out "$OUTDIR" "$@" 2>&1 | tee "$OUTDIR/gpu_check.log"
