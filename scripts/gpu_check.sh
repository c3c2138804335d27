#!/usr/bin/env bash
# One prepared device check: XOR and MNIST (20 epochs) on every available backend,
# on the GPU and on the CPU for comparison, then the parity checks (CPU and GPU
# participants, TF32 off). MNIST runs twice: with Keras fit, the default and what
# the project proves (OUTDIR/results/mnist-<backend>-<device>.json), and with the
# framework loop, the labelled fast path (...-<device>-loop.json). Results files
# and a log go to OUTDIR.
#
#   scripts/gpu_check.sh OUTDIR [--device gpu|cpu] [--epochs N]
#
# Works offline on a machine whose Python already has CUDA torch and/or JAX:
# keras and its pure-Python dependencies may come in as wheels (see README),
# MNIST from MULTIBACKEND_DATA_DIR. A backend that is not installed is reported
# as unavailable and skipped; so is TensorFlow on an image without it.
set -u
usage() { echo "usage: $0 OUTDIR [--device gpu|cpu] [--epochs N]" >&2; exit 2; }
[ $# -ge 1 ] || usage
outdir=$1; shift
device=gpu
epochs=20
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=${2:-}; shift 2 ;;
    --epochs) epochs=${2:-}; shift 2 ;;
    *) usage ;;
  esac
done
case $device in gpu|cpu) ;; *) echo "--device must be gpu or cpu" >&2; exit 2 ;; esac
case $epochs in ''|*[!0-9]*|0) echo "--epochs must be a positive integer" >&2; exit 2 ;; esac

here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
mkdir -p "$outdir/results"
log="$outdir/gpu_check.log"
: > "$log"
say() { echo "$*" | tee -a "$log"; }
step() {  # step LIMIT_SECONDS COMMAND...: run, log, never stop the script
  local limit=$1; shift
  say "\$ $*"
  local start=$SECONDS
  timeout "$limit" "$@" >> "$log" 2>&1
  local rc=$?
  say "  -> exit $rc after $((SECONDS - start)) s"
  return 0
}

say "== gpu_check $(date -u +%FT%TZ) device=$device epochs=$epochs"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$log"
"$python" - <<'PY' 2>&1 | tee -a "$log"
import importlib.metadata, importlib.util, platform
print("python", platform.python_version())
# Versions from the installed metadata: importing keras here would pick its
# default backend, TensorFlow, which a GPU image may not have.
for name, distributions in (("keras", ["keras"]), ("torch", ["torch"]), ("jax", ["jax"]),
                            ("tensorflow", ["tensorflow", "tensorflow-cpu"]), ("numpy", ["numpy"])):
    if importlib.util.find_spec(name) is None:
        print(f"{name}: not installed (unavailable here)")
        continue
    for distribution in distributions:
        try:
            print(f"{name}: {importlib.metadata.version(distribution)}")
            break
        except importlib.metadata.PackageNotFoundError:
            pass
    else:
        print(f"{name}: installed, version unknown")
PY

backends=()
for backend in torch jax tensorflow; do
  if "$python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$backend') is None)"; then
    backends+=("$backend")
  else
    say "== $backend: not installed here, reported as unavailable"
  fi
done

run_device() {  # run_device DEVICE: XOR, MNIST (Keras fit) and MNIST (the loop, fast path) on every backend
  local dev=$1
  for backend in "${backends[@]}"; do
    step 300 "$python" -m multibackend run xor --backend "$backend" --device "$dev" --verbose 0 --out "$outdir/results"
    step 600 "$python" -m multibackend run mnist --backend "$backend" --device "$dev" --epochs "$epochs" --verbose 2 --out "$outdir/results"
    step 600 "$python" -m multibackend run mnist --backend "$backend" --device "$dev" --epochs "$epochs" --trainer loop --verbose 2 --out "$outdir/results"
  done
}

# Most valuable first, so that a run cut short by the device's time limit keeps
# the GPU runs and the GPU parity checks; the CPU runs are only the comparison.
if [ "$device" = gpu ]; then
  run_device gpu
  step 900 "$python" -m multibackend parity --device auto --out "$outdir/results"
  run_device cpu
else
  run_device cpu
  [ ${#backends[@]} -ge 2 ] && step 900 "$python" -m multibackend parity --device cpu --out "$outdir/results"
fi

say "== summary (seconds per epoch: median over epochs 2..N)"
"$python" - "$outdir/results" <<'PY' 2>&1 | tee -a "$log"
import json, pathlib, statistics, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*-*-*.json")):
    r = json.loads(path.read_text())
    later = r["epoch_seconds"][1:] or r["epoch_seconds"]
    metric = r["test"].get(r.get("metric", "accuracy"))
    print(f"{r['example']:<6} {r['backend']:<11} {r['device']:<4} {r.get('trainer', 'fit'):<5} {r['device_name'][:28]:<28} "
          f"acc {metric:.4f}  s/epoch {statistics.median(later):.3f}  first {r['epoch_seconds'][0]:.2f}  "
          f"{'PASS' if r['passed'] else 'FAIL'}")
parity = pathlib.Path(sys.argv[1]) / "parity.json"
if parity.exists():
    p = json.loads(parity.read_text())
    print("parity", ", ".join(p["participants"]), "PASSED" if p["passed"] else "FAILED " + ", ".join(p["failed_checks"]))
    for check, worst in sorted(p["max_difference"].items()):
        print(f"  {check:<48} max {worst:.3g}")
PY
