# Sourced by benchmarks/gpu_check.sh and benchmarks/gpu_engine.sh (run from the repo
# root, with PY set): installs the wheels carried in .whl/ into /tmp/site, puts the
# project on PYTHONPATH, and defines machine_check LOG DEVICE, which writes the machine
# (nvidia-smi, Python, torch, CUDA, GPU) to LOG and exits the script with its reason
# where DEVICE is cuda and no GPU is visible, or a package the trainer needs is missing.
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}

machine_check() {  # log file, device (cuda | cpu)
  local log=$1
  { nvidia-smi || true; } > "$log" 2>&1
  DEVICE=$2 "$PY" - >>"$log" 2>&1 <<'EOF' || { cat "$log"; exit 1; }
import importlib, os, sys
import torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available())
if os.environ["DEVICE"] == "cuda":
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible to torch")
    print("gpu", torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).total_memory // 2**20, "MiB")
missing = [m for m in ("numpy", "cv2", "scipy", "platformdirs", "tqdm", "zuko", "matplotlib")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit("missing packages: " + ", ".join(missing) + " (carry their wheels in .whl/)")
print("pynvml", importlib.util.find_spec("pynvml") is not None)
import core.bench, core.training  # noqa: F401,E401  (the project imports)
print("imports ok; cpus", os.cpu_count())
EOF
  cat "$log"
}
