#!/usr/bin/env bash
# Every benchmark behind BENCHMARKS.md, run side by side on one machine. Needs the Fashion-MNIST
# IDX files (Debian: apt-get install dataset-fashion-mnist) and torchlogix (pip install
# --no-deps torchlogix==0.1.1). Results land in benchmarks/results/ as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
mkdir -p "$out"
dg=.venv/bin/diffgates
$dg bench train --json --steps 15 --rounds 3 > "$out/train.json"
$dg bench train --json --steps 15 --rounds 5 --batches 128 --threads 2 \
  --impls diffgates,diffgates-layers,diffgates-bf16,diffgates-torch,reference,torchlogix > "$out/train_b128_t2_rounds5.json"
$dg bench train --json --steps 15 --rounds 5 --batches 128 --threads 1,2 \
  --impls diffgates,diffgates-layers,diffgates-bf16,diffgates-torch,reference,torchlogix > "$out/train_b128_t12_rounds5.json"
$dg bench infer --json --infer-widths 8000,64000 --threads 1,2 --rounds 5 > "$out/infer_packed_rounds5.json"
# where the executor's time goes (an instrumented build, one thread)
.venv/bin/python benchmarks/executor_phases.py --width 8000 > "$out/executor_phases_8000.json"
.venv/bin/python benchmarks/executor_phases.py --width 64000 --samples 40000 > "$out/executor_phases_64000.json"
# classes found in the kernel (Executor.predict) against counts and numpy's argmax
.venv/bin/python benchmarks/executor_predict.py --out "$out/executor_predict.json"
$dg bench epoch --json --threads 2 > "$out/epoch.json"
# the trained Fashion-MNIST model (train it first: see BENCHMARKS.md, Accuracy)
if [ -f runs/fmnist-dense48k/circuit.npz ]; then
  $dg bench infer --json --circuit runs/fmnist-dense48k/circuit.npz --samples 100000 > "$out/infer_fashion.json"
fi
# convolutional training step (MNIST-S architecture, 150K gates) side by side
$dg bench conv --json --model mnist-s --batches 128 --threads 2 --steps 10 --rounds 3 > "$out/conv_train_mnist-s.json"
# learned connections against fixed wiring, same network
$dg bench train --json --impls diffgates,diffgates-learned,diffgates-learned-torch --batches 128 --threads 2 --steps 15 --rounds 3 > "$out/train_learned.json"
# ensembles of the convolutional Fashion-MNIST runs (train them first: see BENCHMARKS.md)
if [ -f runs/fashion-conv-t15/circuit.npz ]; then
  .venv/bin/python benchmarks/ensemble.py results/fashion-conv runs/fashion-conv-t15 runs/fashion-conv-d4 \
    runs/fashion-conv-tau16 runs/fashion-conv-flip80 > "$out/ensemble_fashion_conv.txt"
fi
# what the --gate-cost estimate adds to a training step
$dg bench conv --json --impls diffgates,diffgates-gate-cost --model fashion-conv --batches 128 --threads 2 --steps 10 --rounds 3 > "$out/conv_train_gate_cost.json"
$dg bench conv --json --impls diffgates,diffgates-gate-cost --model fashion-conv --param truth4 --batches 128 --threads 2 --steps 10 --rounds 3 > "$out/conv_train_gate_cost_truth4.json"
$dg bench train --json --impls diffgates,diffgates-gate-cost --batches 128 --threads 2 --steps 15 --rounds 3 > "$out/train_gate_cost.json"
# where a convolutional circuit loses accuracy: float probes on its blocks' discrete outputs
.venv/bin/python benchmarks/probe_features.py results/fashion-conv-kd --threads 2 > "$out/probe_fashion_conv_kd.jsonl"
# dense heads on the committed convolutional trunks (session 10; about 15 min each on 1 thread;
# the training runs themselves, not side by side): accuracy and gates in runs/NAME*/summary.json
if [ "${DIFFGATES_TRAIN_HEADS:-0}" = 1 ]; then
  benchmarks/fashion_members.sh dense tks2 --trunk results/fashion-conv-small --trunk-blocks 2
  benchmarks/fashion_members.sh dense tkw --trunk results/fashion-conv-kd --trunk-blocks 2 \
    --widths 16000,16000,16000,16000 --tau 28
  benchmarks/fashion_members.sh dense tk2 --trunk results/fashion-conv-kd --trunk-blocks 2
  benchmarks/fashion_members.sh dense tk2b --trunk results/fashion-conv-kd --trunk-blocks 2 --seed 1
  $dg merge runs/tk2-s1 runs/tk2b-s1 --out runs/two-heads --overwrite
  # session 11: the head also reads the encoder's bits (results/fashion-conv-head-bits = tkxbw-c2)
  benchmarks/fashion_members.sh dense tkxbw --trunk results/fashion-conv-xs --trunk-blocks 2 \
    --head-input blocks+bits --widths 16000,16000,16000,16000 --tau 28
  $dg train --config runs/tkxbw/config.yaml --init-from runs/tkxbw --gate-cost 2 --epochs 4 --lr 0.005 \
    --lr-schedule cosine --threads 1 --quiet --out runs/tkxbw-c2 --overwrite
fi
