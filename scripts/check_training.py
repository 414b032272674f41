#!/usr/bin/env python3
"""Training parity with Hugging Face Trainer: the same tiny BERT, data and Trainer arguments,
trained by orchestrate's `finetune` and by transformers' Trainer, must end with the same
weights (max abs diff <= 1e-5 over every tensor) and the same eval accuracy.

This is what "the same accuracy as the notebook" rests on: with dropout off and every
example in one batch (so that neither the data order nor the dropout masks, which come from
different random generators, matter), AdamW, the decay/no-decay groups, the linear schedule
with warmup, gradient clipping and the loss are compared step for step. What is left
between two real runs is the seed.

    .venv-hf/bin/python scripts/check_training.py target/debug/orchestrate OUT_DIR

(scripts/roundtrip.sh runs it.) Needs torch==2.11.0, transformers, safetensors.
"""
import json
import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests/fixtures/models/tiny-bert")
DATA = os.path.join(ROOT, "tests/fixtures/tiny-lm")
TOL = 1e-5
# Trainer's arguments, as both sides get them: every one that the update depends on differs
# from its default, so that a mistake in any of them shows.
LR, EPOCHS, WEIGHT_DECAY, WARMUP_STEPS, MAX_GRAD_NORM, SEED = 3e-3, 5, 0.01, 2, 0.5, 42


def base_model(folder):
    """The tiny BERT with a 2-label head and no dropout, saved as an HF folder."""
    from transformers import BertConfig, BertForSequenceClassification

    with open(os.path.join(FIXTURE, "config.json")) as f:
        config = json.load(f)
    config.update(num_labels=2, id2label={"0": "LABEL_0", "1": "LABEL_1"}, label2id={"LABEL_0": 0, "LABEL_1": 1},
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig.from_dict(config))
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(os.path.join(FIXTURE, name), folder)


def orchestrate(binary, out, model):
    n_train = sum(1 for _ in open(os.path.join(DATA, "train.csv"))) - 1
    experiment = os.path.join(out, "parity.toml")
    with open(experiment, "w") as f:
        f.write(f"""
[datasets.data]
train = "{DATA}/train.csv"
eval = "{DATA}/eval.csv"

[tasks.tokens]
kind = "tokenize"
inputs = "data"
model = "{model}"
max_len = 32

[tasks.finetune]
kind = "finetune"
inputs = "tokens"
model = "{model}"
lr = {LR}
epochs = {EPOCHS}
batch_size = {n_train}
weight_decay = {WEIGHT_DECAY}
warmup_steps = {WARMUP_STEPS}
max_grad_norm = {MAX_GRAD_NORM}
seed = {SEED}
threads = 1
""")
    cache = os.path.join(out, "cache")
    run = subprocess.run([binary, "--json", "--cache-dir", cache, "--reports-dir", os.path.join(out, "reports"),
                          "run", experiment], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"orchestrate failed:\n{run.stdout}\n{run.stderr}")
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    metrics = next(e["metrics"] for e in events if e.get("event") == "task_finished" and e.get("task") == "finetune")
    (checkpoint,) = [os.path.join(root, "model.safetensors") for root, _, files in os.walk(os.path.join(cache, "artifacts"))
                     if root.endswith("checkpoint") and "model.safetensors" in files]
    return load_file(checkpoint), metrics


def trainer(model_dir, out):
    import csv

    import numpy as np
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def dataset(split):
        with open(os.path.join(DATA, f"{split}.csv"), newline="") as f:
            return [dict(tokenizer(row["text"], truncation=True, max_length=32), labels=int(row["label"]))
                    for row in csv.DictReader(f)]

    train, evaluation = dataset("train"), dataset("eval")
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    args = TrainingArguments(output_dir=os.path.join(out, "hf"), learning_rate=LR, num_train_epochs=EPOCHS,
                             per_device_train_batch_size=len(train), weight_decay=WEIGHT_DECAY,
                             warmup_steps=WARMUP_STEPS, max_grad_norm=MAX_GRAD_NORM, seed=SEED, use_cpu=True,
                             save_strategy="no", report_to="none", disable_tqdm=True)

    def accuracy(prediction):
        return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}

    hf = Trainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                 data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=accuracy)
    hf.train()
    return {k: v.detach() for k, v in hf.model.state_dict().items()}, hf.evaluate()["eval_accuracy"]


def main():
    binary, out = sys.argv[1], sys.argv[2]
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    model_dir = os.path.join(out, "model")
    base_model(model_dir)
    torch.set_num_threads(1)
    ours, metrics = orchestrate(binary, out, model_dir)
    theirs, hf_accuracy = trainer(model_dir, out)
    start = load_file(os.path.join(model_dir, "model.safetensors"))
    worst, moved = 0.0, 0.0
    for name, tensor in theirs.items():
        if name not in ours:
            raise SystemExit(f"orchestrate's checkpoint has no {name}")
        if name.endswith("attention.self.key.bias"):
            # Its gradient is zero in exact arithmetic (adding q·b to every score of a row
            # leaves the softmax unchanged), so both sides hold float noise, ~1e-9, which
            # Adam divides by its own square root into lr-sized steps of random sign.
            continue
        worst = max(worst, (ours[name] - tensor).abs().max().item())
        if name in start:
            moved = max(moved, (tensor - start[name]).abs().max().item())
    print(f"training parity: {len(theirs)} tensors (the key biases aside), {EPOCHS} steps; largest change from the start {moved:.3e}, "
          f"largest difference orchestrate vs Trainer {worst:.3e}; eval accuracy {metrics['accuracy']} vs {hf_accuracy}")
    if moved < 100 * TOL:
        raise SystemExit("the weights hardly moved: the comparison would prove nothing")
    if worst > TOL:
        raise SystemExit(f"orchestrate's and Trainer's weights differ by {worst} > {TOL}")
    if metrics["accuracy"] != hf_accuracy:
        raise SystemExit(f"eval accuracy differs: orchestrate {metrics['accuracy']}, Trainer {hf_accuracy}")


if __name__ == "__main__":
    main()
