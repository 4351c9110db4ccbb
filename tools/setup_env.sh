#!/usr/bin/env bash
# Create .venv/ with the pinned OpenMMLab stack. Idempotent: a stamp holding
# the hash of this script and requirements/*.txt makes a second run a no-op.
#
# torch and torchvision come from PyPI (their CUDA builds, which also run on
# a CPU): mmpretrain imports torchvision, and PyPI's torchvision wheels load
# only beside PyPI's torch, not beside a "+cpu" build (a machine-local CPU
# wheel is replaced). GPU users: create .venv yourself, install your torch
# 2.x and its torchvision into it first (and set FORCE_CUDA=1 so mmcv builds
# its CUDA kernels), then run `make demo` / `make test`. A torch that
# imports with its torchvision is kept as it is.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.venv}
py=$venv/bin/python
torch_version=${TORCH_VERSION:-2.13.0}
torchvision_version=${TORCHVISION_VERSION:-0.28.0}

stamp_value=$(cat "$root/tools/setup_env.sh" "$root"/requirements/*.txt | sha256sum | cut -c1-16)
if [ -f "$venv/.setup-stamp" ] && [ "$(cat "$venv/.setup-stamp")" = "$stamp_value" ]; then
    exit 0
fi

say() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# pip's config here may name extra local indexes that do not exist; their
# warnings are noise.
pipi() {
    "$py" -m pip install --disable-pip-version-check -q "$@" 2>&1 |
        { grep -v "^WARNING: Location '" || true; }
}

if [ ! -x "$py" ]; then
    say "creating $venv"
    python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
fi

if ! "$py" -c 'import torch, torchvision' 2>/dev/null; then
    if "$py" -c 'import sys, torch; sys.exit("+cpu" not in torch.__version__)' 2>/dev/null; then
        say "replacing torch $("$py" -c 'import torch; print(torch.__version__)'): PyPI's torchvision does not load beside a CPU-only build"
        "$py" -m pip uninstall -y -q torch
    fi
    say "installing torch==$torch_version and torchvision==$torchvision_version from PyPI"
    # --isolated: machine-wide pip settings may point at a local +cpu wheel
    pipi --isolated --index-url https://pypi.org/simple \
        "torch==$torch_version" "torchvision==$torchvision_version"
fi
say "torch $("$py" -c 'import torch, torchvision; print(torch.__version__, "/ torchvision", torchvision.__version__)')"

# mmcv 2.1.0's setup.py and mmengine 0.10.7 import pkg_resources, which
# setuptools>=82 no longer ships.
pipi "setuptools<82" wheel ninja numpy "mmengine==0.10.7"

if ! "$py" -c 'import mmcv, mmcv.ops; assert mmcv.__version__ == "2.1.0"' 2>/dev/null; then
    log=$venv/mmcv-build.log
    say "building mmcv 2.1.0 with ops from source (about 20 min on 2 cores the first time, then pip's wheel cache; full log: $log)"
    start=$(date +%s)
    # ninja prints "[k/n] c++ ..." per translation unit: show that as progress.
    set +e
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "$py" -m pip install --disable-pip-version-check \
        --no-build-isolation -v "mmcv==2.1.0" 2>&1 | tee "$log" |
        while IFS= read -r line; do
            line="${line#"${line%%[![:space:]]*}"}"  # pip -v indents
            case "$line" in
                \[[0-9]*/[0-9]*\]*)
                    step=${line%%]*}
                    printf '[setup] mmcv build %s] %ss\n' "$step" "$(( $(date +%s) - start ))" ;;
                *"Successfully installed"*|*"Using cached mmcv"*|*"Processing"*"mmcv"*) printf '[setup] %s\n' "$line" ;;
            esac
        done
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log"
        say "mmcv build failed, see $log"
        exit "$status"
    fi
    "$py" -c 'import mmcv.ops' || { say "mmcv installed without ops (mmcv._ext missing)"; exit 1; }
fi

say "installing mmsegmentation / mmdet / runtime requirements"
pipi -r "$root/requirements/runtime.txt"
say "installing mmdet3d 1.4.0 (--no-deps) and what it imports"
pipi --no-deps "mmdet3d==1.4.0" "nuscenes-devkit==1.2.0" "lyft_dataset_sdk==0.0.8"
pipi -r "$root/requirements/mmdet3d.txt"
pipi -r "$root/requirements/tests.txt"
say "installing onnx / onnxruntime (ONNX export, docs/deployment.md)"
pipi -r "$root/requirements/deploy.txt"
pipi --no-deps --no-build-isolation -e "$root"

"$py" - <<'EOF'
import mmcv, mmdet, mmdet3d, mmengine, mmpretrain, mmseg, torch
import mmcv.ops  # noqa: F401
import mmpretrain.models  # noqa: F401  (needs torchvision)
print('[setup] ok: torch %s, mmengine %s, mmcv %s, mmseg %s, mmdet %s, '
      'mmdet3d %s, mmpretrain %s'
      % (torch.__version__, mmengine.__version__, mmcv.__version__,
         mmseg.__version__, mmdet.__version__, mmdet3d.__version__,
         mmpretrain.__version__))
EOF
echo "$stamp_value" > "$venv/.setup-stamp"
