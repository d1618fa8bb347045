# dsc tasks. Every recipe creates .venv when it is missing (needs Python 3.11+ as python3).
set shell := ["bash", "-euo", "pipefail", "-c"]

python := env_var_or_default("PYTHON", "python3")
bin := ".venv/bin"

# Create .venv and install dsc editable with the dev extra (quick when nothing changed).
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x .venv/bin/python ]; then {{python}} -m venv .venv; fi
    want=$(cat pyproject.toml examples/*/pyproject.toml 2>/dev/null | sha256sum | cut -c1-16)
    if [ "$(cat .venv/.dsc-installed 2>/dev/null)" != "$want" ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e ".[dev]"
        echo "$want" > .venv/.dsc-installed
    fi

# Run the main job on the built-in demo data: toyparts -> subset -> invert -> augment (normal, OOD,
# evaluation-only OOD) with the tiny random Stable Diffusion -> the study (CE and SupCon+probe, none /
# normal / normal+OOD synthetic data, 2 seeds) -> the report. Outputs go to demo-out/.
demo: setup
    #!/usr/bin/env bash
    set -euo pipefail
    export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1
    mkdir -p demo-out
    tiny="--model tiny --tokens demo-out/tokens --resolution 64 --steps 10 --per-image 2 --examples-per-class 4"
    dsc subset --dataset toyparts --classes 6 --holdout-classes 2 --crop-to-object --mask-dilation 8 \
        --option objects_per_class=30 --resolution 64 --seed 0 --output demo-out/data.h5 --force
    dsc info demo-out/data.h5
    dsc invert demo-out/data.h5 --model tiny --output demo-out/tokens --steps 20 --resolution 64 \
        --examples-per-class 4 --batch-size 4 --num-vectors 2 --force
    dsc augment demo-out/data.h5 $tiny --mode normal --strength 0.25,0.5 \
        --output demo-out/aug-normal.h5 --force
    dsc augment demo-out/data.h5 $tiny --mode ood --ood-strategy strength --output demo-out/aug-ood.h5 --force
    dsc augment demo-out/data.h5 $tiny --mode ood --ood-strategy strength --split test \
        --output demo-out/aug-ood-test.h5 --force
    dsc study examples/study-demo.toml --force --no-report
    dsc report demo-out/study --data demo-out/data.h5 --synthetic demo-out/aug-normal.h5 \
        --synthetic demo-out/aug-ood.h5 --results-figure demo-out/results.png --samples demo-out/samples.png \
        --confusion demo-out/confusion.png \
        --embedding-map demo-out/embedding-map.png --markdown demo-out/report.md --html demo-out/report.html \
        --force

# DA-Fusion's few-shot design, the whole pipeline from one file (examples/study-fewshot.toml): the study
# builds its data, tokens and synthetic stores per cell and seed, trains, and draws the data-efficiency curve.
demo-few-shot: setup
    #!/usr/bin/env bash
    set -euo pipefail
    export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1
    dsc study examples/study-fewshot.toml --dry-run
    dsc study examples/study-fewshot.toml --force --markdown demo-out/fewshot/report.md

# Every synthetic-data strategy in one study (examples/study-strategies.toml): DA-Fusion with tokens and with a
# LoRA, Real Guidance, Diff-Mix (soft labels) and text-to-image, one named arm each, against real data only.
demo-strategies: setup
    #!/usr/bin/env bash
    set -euo pipefail
    export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1
    dsc study examples/study-strategies.toml --dry-run --force
    dsc study examples/study-strategies.toml --force --markdown demo-out/strategies/report.md

# Run the test suite (slow end-to-end tests included).
test *args: setup
    {{bin}}/python -m pytest -q {{args}}

# Lint with ruff.
lint: setup
    {{bin}}/ruff check dsc plugins tests benchmarks

# Run every benchmark script and print one table.
bench *args: setup
    {{bin}}/python benchmarks/run_all.py {{args}}

# GPU check: SD 1.5-size generation and pretrain throughput (skips cleanly without CUDA).
gpu-check *args:
    bash benchmarks/gpu_check.sh {{args}}
