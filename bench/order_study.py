"""Settles `group_by_length` (issue 18, item 5): does orchestrate's length-grouped training
lose accuracy against the Trainer's, and if so, is it the batch order or the training?

For each seed s, four full fine-tunings of all-MiniLM-L6-v2 on the same data, with
group_by_length, in float32 (the setting of docs/performance.md's table 2 unless told):
  O   orchestrate on its own grouped order (it writes that order, batch_order.json);
  H   the Trainer on its own grouped order (hf_job.py --dump-order writes it);
  HO  the Trainer on O's order (hf_job.py --batch-order);
  OH  orchestrate on H's order (`batch_order = "..."` on the task).
Each tool seeds its model (head included) and its dropout from s, so a pair on the same
order differs only by the tool, and a pair in the same tool only by the order. Printed:
every run's accuracy, and per seed then as a mean with a 95% t-interval over the seeds,
  tool, same order:   O - HO  and  OH - H
  order, same tool:   O - OH  and  HO - H
Results go to <work>/runs.jsonl as they finish; a run already there is not run again, so
an interrupted study resumes where it stopped; --report prints the table of the runs done so far.

  bench/.venv-bench/bin/python bench/order_study.py --seeds 42,43,44,45,46
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARMS = ["O", "H", "HO", "OH"]
# Two-sided 95% quantiles of Student's t by degrees of freedom.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 19: 2.093, 24: 2.064, 29: 2.045}


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="42,43,44,45,46")
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--data", default=str(ROOT / "data/imdb"), help="a folder with train.csv and eval.csv (review, label)")
    p.add_argument("--model", default=str(ROOT / "models/all-MiniLM-L6-v2"))
    p.add_argument("--orchestrate", default=str(ROOT / "target/release/orchestrate"))
    p.add_argument("--work", default=str(ROOT / "target/order-study"), help="kept between runs (resumes)")
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of O,H,HO,OH")
    p.add_argument("--report", action="store_true", help="print the table from the runs already done; run nothing")
    p.add_argument("--results", help="the runs file (default <work>/runs.jsonl), e.g. bench/results/order-study-runs.jsonl")
    return p.parse_args()


def experiment(args, work, seed, order=None):
    """orchestrate's side: the finetune of bench.py's (c), grouped, optionally on a given order."""
    name = f"order-study-{seed}" + ("-given" if order else "")
    text = f"""
[experiment]
name = "{name}"

[datasets.imdb]
train = "{Path(args.data) / 'train.csv'}"
eval = "{Path(args.data) / 'eval.csv'}"
text_column = "review"
label_column = "label"

[tasks.tokens]
kind = "tokenize"
model = "{args.model}"
inputs = {{ data = "imdb" }}
max_len = {args.max_len}

[tasks.finetune]
kind = "finetune"
model = "{args.model}"
inputs = {{ tokens = "tokens" }}
lr = {args.lr}
epochs = {args.epochs}
seed = {seed}
group_by_length = true
"""
    if order:
        text += f'batch_order = "{order}"\n'
    path = work / f"{name}.toml"
    path.write_text(text)
    return path


def run_orchestrate(args, work, seed, order=None):
    toml = experiment(args, work, seed, order)
    cache = work / "cache"
    log = work / f"{toml.stem}.jsonl"
    cmd = [args.orchestrate, "--json", "--cache-dir", str(cache), "--reports-dir", str(work / "reports"),
           "run", str(toml), "--only", "finetune"]
    with open(log, "w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if code != 0:
        raise SystemExit(f"orchestrate failed (exit {code}), see {log}")
    for line in open(log):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") in ("task_finished", "task_cached") and event["task"] == "finetune":
            artifact = cache / "artifacts" / event["key"]
            metrics = json.loads((artifact / "metrics.json").read_text())
            return metrics["accuracy"], artifact / "batch_order.json"
    raise SystemExit(f"no finetune in {log}")


def run_hf(args, work, seed, order=None, dump=None):
    out = work / f"hf-{seed}-{'given' if order else 'own'}.json"
    cmd = [sys.executable, str(ROOT / "bench/hf_job.py"), "--method", "full", "--variant", "best",
           "--max-len", str(args.max_len), "--epochs", str(args.epochs), "--seed", str(seed), "--lr", str(args.lr),
           "--train", str(Path(args.data) / "train.csv"), "--eval", str(Path(args.data) / "eval.csv"),
           "--model", args.model, "--out", str(out)]
    cmd += ["--batch-order", str(order)] if order else []
    cmd += ["--dump-order", str(dump)] if dump else []
    log = out.with_suffix(".log")
    with open(log, "w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if code != 0:
        raise SystemExit(f"hf_job.py failed (exit {code}), see {log}")
    return json.loads(out.read_text())["full"]["accuracy"]


def padding_check(args, order_file):
    """Real tokens / padded tokens of an order's batches under the Trainer's tokenizer: a
    grouped order read with the wrong row numbering would pad like a random one."""
    import pandas as pd
    from transformers import AutoTokenizer

    order = json.loads(Path(order_file).read_text())
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    reviews = pd.read_csv(Path(args.data) / "train.csv")["review"].tolist()
    lengths = [len(ids) for ids in tokenizer(reviews, truncation=True, max_length=args.max_len)["input_ids"]]
    batch = order["batch_size"]
    real = padded = 0
    for epoch in order["epochs"]:
        for start in range(0, len(epoch), batch):
            chunk = [lengths[i] for i in epoch[start:start + batch]]
            real, padded = real + sum(chunk), padded + len(chunk) * max(chunk)
    return real / padded


def interval(values):
    """Mean and half-width of the 95% t-interval (nan with fewer than two values)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan")
    df = len(values) - 1
    t = T975.get(df) or min((q for d, q in T975.items() if d <= df), default=1.96)
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def main():
    args = parse()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results_file = Path(args.results) if args.results else work / "runs.jsonl"
    done = {}
    if results_file.exists():
        for line in results_file.read_text().splitlines():
            row = json.loads(line)
            done[(row["seed"], row["arm"])] = row
    seeds = [int(s) for s in args.seeds.split(",")]
    arms = args.arms.split(",")

    def record(seed, arm, accuracy, **extra):
        row = {"seed": seed, "arm": arm, "accuracy": accuracy, **extra}
        done[(seed, arm)] = row
        with open(results_file, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"order-study: seed {seed} {arm}: accuracy {accuracy:.3f}", flush=True)

    for seed in [] if args.report else seeds:
        orders = work / f"orders-{seed}"
        orders.mkdir(exist_ok=True)
        own_o, own_h = orders / "orchestrate.json", orders / "trainer.json"
        if "O" in arms and (seed, "O") not in done:
            accuracy, written = run_orchestrate(args, work, seed)
            own_o.write_bytes(written.read_bytes())
            record(seed, "O", accuracy, real_token_fraction=padding_check(args, own_o))
        if "H" in arms and (seed, "H") not in done:
            accuracy = run_hf(args, work, seed, dump=own_h)
            record(seed, "H", accuracy, real_token_fraction=padding_check(args, own_h))
        if "HO" in arms and (seed, "HO") not in done:
            record(seed, "HO", run_hf(args, work, seed, order=own_o))
        if "OH" in arms and (seed, "OH") not in done:
            record(seed, "OH", run_orchestrate(args, work, seed, order=own_h)[0])

    print(f"\nFull fine-tuning, group_by_length, {args.max_len} tokens, {args.epochs} epoch(s), "
          f"{Path(args.data).name}; accuracy on the eval split\n")
    print("| seed | " + " | ".join(ARMS) + " | O − HO | OH − H | O − OH | HO − H |")
    print("|---|" + "---:|" * 8)
    pairs = {"O − HO": ("O", "HO"), "OH − H": ("OH", "H"), "O − OH": ("O", "OH"), "HO − H": ("HO", "H")}
    diffs = {name: [] for name in pairs}
    for seed in seeds:
        acc = {arm: done[(seed, arm)]["accuracy"] for arm in ARMS if (seed, arm) in done}
        cells = [f"{acc[a]:.3f}" if a in acc else "" for a in ARMS]
        for name, (x, y) in pairs.items():
            if x in acc and y in acc:
                diffs[name].append(acc[x] - acc[y])
                cells.append(f"{acc[x] - acc[y]:+.3f}")
            else:
                cells.append("")
        print(f"| {seed} | " + " | ".join(cells) + " |")
    means = []
    for arm in ARMS:
        values = [done[(s, arm)]["accuracy"] for s in seeds if (s, arm) in done]
        means.append(f"{statistics.fmean(values):.3f}" if values else "")
    cells = []
    for name in pairs:
        if diffs[name]:
            mean, half = interval(diffs[name])
            cells.append(f"{mean:+.3f} ± {half:.3f}")
        else:
            cells.append("")
    print("| mean (95% CI) | " + " | ".join(means) + " | " + " | ".join(cells) + " |")
    for arm in ("O", "H"):
        fractions = [done[(s, arm)]["real_token_fraction"] for s in seeds if (s, arm) in done]
        if fractions:
            print(f"\n{arm}'s orders are {statistics.fmean(fractions):.1%} real tokens under the Trainer's tokenizer", end="")
    print()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
