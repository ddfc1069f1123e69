#!/usr/bin/env bash
# The GPU check: the default recipe in bfloat16 on every visible GPU, first with DDP (torchrun), then with FSDP
# (accelerate, configs/accelerate_fsdp.yaml), then `bertmap predict` on cuda, and the ONNX export served by ONNX
# Runtime's CUDA provider where onnxruntime-gpu is installed; one JSON line at the end with the time, peak GPU
# memory, throughput and test metrics of each. It installs nothing beyond the README's set-up (drop the CPU pin of
# torch on a GPU machine).
#
#   bash bench/gpu_check.sh              # on a machine with CUDA
#   bash bench/gpu_check.sh --dry-run    # anywhere: prints the commands and checks that their arguments parse
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
[ "${1:-}" = "--dry-run" ] && dry_run=1
out=${GPU_CHECK_OUT:-$(mktemp -d -t gpu-check-XXXX)}
gpus=$(python -c "import torch; print(torch.cuda.device_count())")
onnx_cuda=$(python -c "import onnxruntime as o; print(int('CUDAExecutionProvider' in o.get_available_providers()))" \
  2>/dev/null || echo 0)
if [ "$dry_run" = 0 ] && [ "$gpus" -lt 1 ]; then
  echo "error: no CUDA GPU is visible (run with --dry-run to check the commands only)" >&2
  exit 1
fi
nproc=$(( gpus > 0 ? gpus : 2 ))
flags=(--bf16 true --disable_tqdm true --report_to none)

# Each step: print it, check that train.py's arguments parse (on the CPU when dry), run it unless dry, time it.
step() {
  local name=$1; shift
  echo "+ $*" >&2
  if [ "$dry_run" = 1 ]; then
    python - "$@" <<'EOF'
import sys
from hf_bertmap.training import parse_args

args = sys.argv[1:]
if "train.py" in args:  # the arguments after the launcher's own
    parse_args(args[args.index("train.py") + 1 :] + ["--use_cpu", "true"])
EOF
    echo "{\"step\": \"$name\", \"seconds\": 0}" > "$out/$name.time.json"
    return
  fi
  local start end
  start=$(date +%s.%N)
  "$@" > "$out/$name.log" 2>&1 || { tail -n 40 "$out/$name.log" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "{\"step\": \"$name\", \"seconds\": $(python -c "print(round($end - $start, 1))")}" > "$out/$name.time.json"
}

step ddp python -m torch.distributed.run --standalone --nproc_per_node "$nproc" train.py "${flags[@]}" \
  --output_dir "$out/ddp" --skip_memory_metrics false
step fsdp accelerate launch --config_file configs/accelerate_fsdp.yaml --num_processes "$nproc" train.py \
  "${flags[@]}" --output_dir "$out/fsdp" --skip_memory_metrics false
printf 'fishy\nvaluable\nlarge\nvery chonky\nkinda stinky\nscalding\n' > "$out/phrases.txt"
step predict bertmap predict "$out/ddp" --file "$out/phrases.txt" --device cuda --json --top-k 3
steps=(ddp fsdp predict)
if [ "$dry_run" = 1 ] || [ "$onnx_cuda" = 1 ]; then
  step onnx_export bertmap export "$out/ddp" "$out/onnx"
  step onnx_predict bertmap predict "$out/onnx" --backend onnx --file "$out/phrases.txt" --device cuda --json \
    --top-k 3
  steps+=(onnx_predict)
fi

python - "$out" "$dry_run" "$gpus" "${steps[@]}" <<'EOF'
import json
import os
import sys

out, dry_run, gpus, steps = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4:]
report = {"bench": "gpu_check", "dry_run": dry_run, "gpus": gpus}
for name in steps:
    with open(os.path.join(out, f"{name}.time.json")) as f:
        row = {"seconds": json.load(f)["seconds"]}
    results = os.path.join(out, name, "all_results.json")
    if os.path.isfile(results):
        with open(results) as f:
            metrics = json.load(f)
        row.update({key: metrics[key] for key in ("train_samples_per_second", "train_mem_gpu_peaked_delta",
                                                  "test_accuracy", "test_accuracy_at_5") if key in metrics})
    if name.endswith("predict") and not dry_run:
        with open(os.path.join(out, f"{name}.log")) as f:
            row["words"] = {r["phrase"]: r["predictions"][0]["word"] if r["predictions"] else None
                            for r in map(json.loads, (line for line in f if line.startswith("{")))}
    report[name] = row
print(json.dumps(report))
EOF
