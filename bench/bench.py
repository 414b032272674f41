"""orchestrate vs Hugging Face (transformers + peft) vs scikit-learn, same model, data and
hyperparameters, one table. Run through bench/run.sh, which makes the venv and builds
orchestrate; see docs/performance.md.

For every max_len and method it runs, each in its own process:
  (a) the seed recipe (bench/hf_job.py --variant seed),
  (b) HF best practice (bench/hf_job.py --variant best),
  (c) orchestrate on a generated experiment file, with a fresh cache (so it tokenizes,
      encodes and trains from nothing, like the others),
  (d) for head-tuning, orchestrate with the frozen encoder's features computed in
      bfloat16 (`dtype = "bfloat16"`) instead of float32,
  (g) for full fine-tuning and LoRA, orchestrate with `group_by_length = true` (batches of
      similar lengths: faster, see docs/performance.md on accuracy),
and records train samples/s, eval samples/s, wall time and peak RSS (from wait4's rusage
of that process) and accuracy. Ratios are (c) over (a) and (b): train samples/s and wall
time (a ratio > 1 means orchestrate is faster).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The orchestrate variants: tool -> (features dtype, group_by_length, training precision).
ORCHESTRATE = {"c": ("float32", False, "fp32"), "d": ("bfloat16", False, "fp32"), "g": ("float32", True, "fp32"),
               "f": ("float32", False, "bf16"), "h": ("float32", True, "bf16")}
# The Hugging Face variants: tool -> (hf_job.py --variant, bf16).
HF = {"a": ("seed", False), "b": ("best", False), "e": ("best", True)}
HYPER = {
    # method: (lr, orchestrate task kind)
    "full": (5e-5, "finetune"),
    "head": (1e-3, "headtune"),
    "lora": (5e-4, "lora"),
}


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-n", type=int, default=128,
                   help="training reviews for full fine-tuning and LoRA (first N of a seeded shuffle; 0 = all 2,000)")
    p.add_argument("--eval-n", type=int, default=64, help="evaluation reviews (0 = all 500)")
    p.add_argument("--seed", type=int, default=42, help="training seed, the same for every tool (the subset stays seed 42's)")
    p.add_argument("--epochs", type=int, default=1, help="epochs of full fine-tuning and LoRA")
    p.add_argument("--head-train-n", type=int, default=32, help="training reviews for head-tuning (0 = all 2,000)")
    p.add_argument("--head-epochs", type=int, default=3,
                   help="epochs of head-tuning: the Trainer's default and the lab's (its speed-up grows with them)")
    p.add_argument("--max-len", default="512,256", help="comma-separated")
    p.add_argument("--methods", default="full,head,lora,tfidf", help="comma-separated: full,head,lora,tfidf")
    p.add_argument("--tools", default="a,b,e,c,f,d,g,h",
                   help="comma-separated: a (seed recipe), b (HF best practice), e (HF best practice, bf16=True), "
                        "c (orchestrate), f (orchestrate, precision = \"bf16\"), "
                        "d (orchestrate, head-tuning on bfloat16 features), "
                        "g (orchestrate, full fine-tuning and LoRA with group_by_length), "
                        "h (orchestrate, bf16 and group_by_length)")
    p.add_argument("--data", default=str(ROOT / "data/imdb"))
    p.add_argument("--model", default=str(ROOT / "models/all-MiniLM-L6-v2"))
    p.add_argument("--orchestrate", default=str(ROOT / "target/release/orchestrate"))
    p.add_argument("--work", default=str(ROOT / "target/bench"), help="scratch folder (wiped)")
    p.add_argument("--out", default=None, help="also write the table (markdown) here")
    return p.parse_args()


def run_measured(cmd, log):
    """Runs cmd, returns (exit status, wall seconds, peak RSS in MB) of that process."""
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    return os.waitstatus_to_exitcode(status), wall, usage.ru_maxrss / 1024


def for_method(args, method):
    """The arguments with head-tuning's own training size and epochs."""
    if method != "head":
        return args
    return argparse.Namespace(**{**vars(args), "train_n": args.head_train_n, "epochs": args.head_epochs})


def subset(args, work):
    import pandas as pd

    data = work / f"data-{args.train_n}-{args.eval_n}"
    if data.exists():
        return data
    data.mkdir(parents=True)
    for split, n in [("train", args.train_n), ("eval", args.eval_n)]:
        frame = pd.read_csv(Path(args.data) / f"{split}.csv")
        if n:
            frame = frame.sample(frac=1.0, random_state=42).head(n)
        frame.to_csv(data / f"{split}.csv", index=False)
    return data


def experiment(args, work, data, max_len, method, tool):
    """The orchestrate side: the same hyperparameters as hf_job.py."""
    lora = method == "lora"
    dtype, grouped, precision = ORCHESTRATE[tool]
    group = "group_by_length = true\n" if grouped else ""
    if precision != "fp32":
        group += f'precision = "{precision}"\n'
    name = f"bench-{max_len}-{method}-{tool}"
    text = f"""
[experiment]
name = "{name}"

[defaults]
model = "{args.model}"
seed = {args.seed}
epochs = {args.epochs}

[datasets.imdb]
train = "{data / 'train.csv'}"
eval = "{data / 'eval.csv'}"
text_column = "review"
label_column = "label"

[tasks.tokens]
kind = "tokenize"
inputs = {{ data = "imdb" }}
max_len = {max_len}
"""
    if lora:
        text += f"""
[tasks.lora]
kind = "lora"
inputs = {{ tokens = "tokens" }}
r = 6
lora_alpha = 12
target_modules = ["query", "value"]
# PEFT's default initialisation (kaiming-uniform A, zero B), as hf_job.py's LoraConfig gets.
init = "kaiming"
lr = {HYPER['lora'][0]}
{group}"""
    else:
        text += f"""
[tasks.finetune]
kind = "finetune"
inputs = {{ tokens = "tokens" }}
lr = {HYPER['full'][0]}
{group}
[tasks.features]
kind = "features"
inputs = {{ tokens = "tokens" }}
pooling = "cls"
dtype = "{dtype}"

[tasks.headtune]
kind = "headtune"
inputs = {{ data = "features" }}
pooling = "cls"
lr = {HYPER['head'][0]}

[tasks.tfidf]
kind = "tfidf"
inputs = {{ data = "imdb" }}
max_features = 5000

[tasks.logreg]
kind = "logreg"
inputs = {{ features = "tfidf" }}
c = 1.0
max_iter = 1000

[tasks.naive_bayes]
kind = "naive_bayes"
inputs = {{ features = "tfidf" }}
alpha = 1.0
"""
    path = work / f"{name}.toml"
    path.write_text(text)
    return path


def orchestrate(args, work, data, max_len, method, n_train, n_eval, tool):
    """Runs orchestrate for one method with a fresh cache; returns {row: result} or a skip reason."""
    toml = experiment(args, work, data, max_len, method, tool)
    cache = work / f"cache-{max_len}-{method}-{tool}"
    base = [args.orchestrate, "--json", "--cache-dir", str(cache), "--reports-dir", str(cache / "reports")]
    if method == "lora":
        probe = subprocess.run(base + ["plan", str(toml)], capture_output=True, text=True, cwd=ROOT)
        if probe.returncode != 0:
            return f"skipped: {probe.stderr.strip().splitlines()[0] if probe.stderr.strip() else 'plan failed'}"
    only = {"full": ["finetune"], "head": ["headtune"], "lora": ["lora"], "tfidf": ["logreg", "naive_bayes"]}[method]
    cmd = base + ["run", str(toml)] + [a for task in only for a in ("--only", task)]
    log = work / f"{tool}-{max_len}-{method}.jsonl"
    code, wall, rss = run_measured(cmd, log)
    if code != 0:
        return f"failed (exit {code}, see {log})"
    finished = {}
    for line in open(log):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "task_finished":
            finished[event["task"]] = event["metrics"]
    rows = {}
    if method in ("full", "lora"):
        m = finished[only[0]]
        rows[method] = {
            "accuracy": m["accuracy"],
            "trainable_params": m["trainable_params"],
            "train_s": m["train_time_s"],
            "eval_s": m["eval_time_s"],
            "train_samples": n_train * args.epochs,
            "eval_samples": n_eval,
        }
    elif method == "head":
        # Honest accounting: encoding the train split counts as training, the eval split as
        # evaluation (each is done once, then the head trains on cached features).
        f, h = finished["features"], finished["headtune"]
        rows["head"] = {
            "accuracy": h["accuracy"],
            "trainable_params": h["trainable_params"],
            "train_s": f["train_encode_time_s"] + h["train_time_s"],
            "eval_s": f["eval_encode_time_s"] + h["eval_time_s"],
            "train_samples": n_train * args.epochs,
            "eval_samples": n_eval,
        }
    else:
        for task in only:
            m = finished[task]
            rows[task] = {
                "accuracy": m["accuracy"],
                "train_s": m["train_time_s"],
                "eval_s": m["eval_time_s"],
                "train_samples": n_train,
                "eval_samples": n_eval,
            }
    for row in rows.values():
        row.update(wall_s=wall, rss_mb=rss)
    return rows


def hf(args, work, data, max_len, method, tool):
    variant, bf16 = HF[tool]
    out = work / f"{tool}-{max_len}-{method}.json"
    cmd = [sys.executable, str(ROOT / "bench/hf_job.py"), "--method", method, "--variant", variant,
           *(["--bf16"] if bf16 else []),
           "--max-len", str(max_len), "--epochs", str(args.epochs), "--seed", str(args.seed), "--lr", str(HYPER.get(method, (5e-5,))[0]),
           "--train", str(data / "train.csv"), "--eval", str(data / "eval.csv"), "--model", args.model,
           "--out", str(out)]
    code, wall, rss = run_measured(cmd, work / f"{tool}-{max_len}-{method}.log")
    if code != 0:
        return f"failed (exit {code}, see {out.with_suffix('.log')})"
    rows = json.loads(out.read_text())
    for row in rows.values():
        row.update(wall_s=wall, rss_mb=rss)
    return rows


def matmul_peak(args, dtype="float32"):
    """Matmul GFLOP/s through libtorch (orchestrate bench-matmul) in `dtype`, best shape."""
    out = subprocess.run([args.orchestrate, "--json", "bench-matmul", "--seconds", "2", "--dtype", dtype],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout)


def training_flops(args, data, max_len, epochs):
    """Model FLOPs of full fine-tuning on the real (unpadded) tokens of the training split:
    6 × (weights in matmuls) per token, plus attention's 12 × d × L² per layer and sequence
    (forward 4·d·L², backward twice that). Embedding lookups, softmax, LayerNorm and the
    optimizer are left out, as in the usual MFU definition."""
    import pandas as pd
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(args.model)
    d, layers, inner = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    matmul_weights = layers * (4 * d * d + 2 * d * inner)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    texts = list(pd.read_csv(data / "train.csv")["review"])
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]]
    per_epoch = 6 * matmul_weights * sum(lengths) + 12 * layers * d * sum(n * n for n in lengths)
    return per_epoch * epochs, sum(lengths) / len(lengths)


def fmt_rate(row, key):
    samples, seconds = row[f"{key}_samples"], row[f"{key}_s"]
    return samples / seconds if seconds > 0 else float("inf")


def table(results, args):
    tool_names = {"a": "(a) seed recipe", "b": "(b) HF best practice", "e": "(e) HF best practice, bf16=True",
                  "c": "(c) orchestrate", "f": "(c) orchestrate, bf16", "h": "(c) orchestrate, bf16, group_by_length",
                  "d": "(c) orchestrate, bfloat16 features", "g": "(c) orchestrate, group_by_length",
                  "s": "scikit-learn"}
    lines = [
        "| max_len | method | tool | train samples/s | eval samples/s | wall s | peak RSS MB | accuracy "
        "| (c)/(a) train, wall | (c)/(b) train, wall | (c)/(e) train, wall |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for (max_len, method), by_tool in results.items():
        for tool, rows in by_tool.items():
            if isinstance(rows, str):
                lines.append(f"| {max_len} | {method} | {tool_names[tool]} | {rows} | | | | | | | |")
                continue
            for row_name, row in rows.items():
                ratios = []
                for other in ("a", "b", "e") if tool in ORCHESTRATE else ():
                    ref = by_tool.get(other if method != "tfidf" else "s")
                    if isinstance(ref, dict) and row_name in ref:
                        r = ref[row_name]
                        ratios.append(f"{fmt_rate(row, 'train') / fmt_rate(r, 'train'):.2f}×, {r['wall_s'] / row['wall_s']:.2f}×")
                    else:
                        ratios.append("")
                ratios += [""] * (3 - len(ratios))
                if method == "tfidf":
                    ratios[1:] = ["", ""]
                label = method if method != "tfidf" else f"TF-IDF + {'LR' if row_name == 'logreg' else 'NB'}"
                lines.append(
                    f"| {max_len if method != 'tfidf' else '–'} | {label} | {tool_names[tool]} "
                    f"| {fmt_rate(row, 'train'):,.1f} | {fmt_rate(row, 'eval'):,.1f} | {row['wall_s']:.1f} "
                    f"| {row['rss_mb']:,.0f} | {row['accuracy']:.3f} | {ratios[0]} | {ratios[1]} | {ratios[2]} |"
                )
                if tool in ORCHESTRATE and isinstance(by_tool.get("a"), dict) and row_name in by_tool["a"]:
                    theirs, ours = by_tool["a"][row_name].get("trainable_params"), row.get("trainable_params")
                    if theirs is not None and ours is not None and theirs != ours:
                        notes.append(f"NOT THE SAME WORK: {method}, max_len {max_len}: {tool_names[tool]} trains "
                                     f"{ours:,} parameters, (a) {theirs:,}")
                if tool == "a" and "train_real_token_fraction" in row and row_name == method:
                    notes.append(f"{tool_names[tool]}, {method}, max_len {max_len}: "
                                 f"{row['train_real_token_fraction'] * 100:.0f}% of the tokenized training rows are real tokens")
                if method == "tfidf" and "vectorize_s" in row and row_name == "logreg":
                    notes.append(f"scikit-learn TF-IDF vectorising (fit + transform): {row['vectorize_s']:.3f} s")
    return "\n".join(lines), notes


def main():
    args = parse()
    work = Path(args.work).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    import pandas as pd

    def sizes(folder):
        return len(pd.read_csv(folder / "train.csv")), len(pd.read_csv(folder / "eval.csv"))

    # TF-IDF takes seconds on the whole sample, and its accuracy on a few dozen reviews says
    # nothing, so its rows always use all of it.
    whole = Path(args.data)
    methods = args.methods.split(",")
    tools = args.tools.split(",")
    max_lens = [int(x) for x in args.max_len.split(",")]
    # method -> (its arguments, its data folder, training and evaluation reviews)
    plans = {}
    for method in methods:
        margs = for_method(args, method)
        source = whole if method == "tfidf" else subset(margs, work)
        plans[method] = (margs, source, *sizes(source))
    scales = "; ".join(f"{m}: {n_train} train / {n_eval} eval reviews, {margs.epochs} epoch(s)"
                       for m, (margs, _, n_train, n_eval) in plans.items() if m != "tfidf")
    if "tfidf" in methods:
        scales += ("; " if scales else "") + "TF-IDF: the whole 2,000/500 sample"
    print(f"bench: {scales}; max_len {max_lens}, methods {methods}, tools {tools}, {os.cpu_count()} CPUs", flush=True)
    started = time.perf_counter()
    results = {}
    for method, (margs, source, n_train, n_eval) in plans.items():
        for max_len in max_lens if method != "tfidf" else [0]:
            by_tool = results.setdefault((max_len, method), {})
            for tool in tools:
                if method == "tfidf" and tool == "b":
                    continue  # no padding involved: (a) and (b) are both scikit-learn
                if tool == "d" and method != "head":
                    continue  # only head-tuning has a frozen encoder to run in bfloat16
                if tool in ("g", "e", "f", "h") and method not in ("full", "lora"):
                    continue  # only these train on token batches (and in mixed precision)
                t0 = time.perf_counter()
                if tool in ORCHESTRATE:
                    by_tool[tool] = orchestrate(margs, work, source, max_len or 512, method, n_train, n_eval, tool)
                else:
                    key = "s" if method == "tfidf" else tool
                    by_tool[key] = hf(margs, work, source, max_len or 512, method, tool)
                print(f"  {method} max_len {max_len or '-'} ({tool}): {time.perf_counter() - t0:.0f} s", flush=True)
    text, notes = table(results, args)
    if "full" in methods and any(tool in tools for tool in ("c", "f", "g", "h")):
        peaks = {dtype: matmul_peak(args, dtype) for dtype in ("float32", "bfloat16")}
        for dtype, peak in peaks.items():
            notes.append(f"{dtype} matmul through libtorch ({peak['threads']} threads): peak {peak['peak_gflops']:.1f} GFLOP/s "
                         "(" + ", ".join(f"{r['m']}×{r['k']}·{r['k']}×{r['n']} {r['gflops']:.1f}" for r in peak["shapes"]) + ")")
        for max_len in max_lens:
            flops, mean_len = training_flops(args, plans["full"][1], max_len, args.epochs)
            for tool in ("a", "b", "e", "c", "f", "g", "h"):
                rows = results.get((max_len, "full"), {}).get(tool)
                if isinstance(rows, dict):
                    achieved = flops / rows["full"]["train_s"] / 1e9
                    mfu = ", ".join(f"{achieved / p['peak_gflops'] * 100:.0f}% of the {d} peak" for d, p in peaks.items())
                    notes.append(f"full fine-tuning, max_len {max_len} (mean {mean_len:.0f} real tokens), {tool}: "
                                 f"{achieved:.1f} model GFLOP/s = MFU {mfu}")
    header = (f"IMDB reviews, {scales}; seed {args.seed}, all-MiniLM-L6-v2, "
              f"{os.cpu_count()} CPUs; total bench time {time.perf_counter() - started:.0f} s")
    output = header + "\n\n" + text + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    print(output)
    (work / "results.json").write_text(json.dumps({f"{k[0]}/{k[1]}": v for k, v in results.items()}, indent=1))
    if args.out:
        Path(args.out).write_text(output)


if __name__ == "__main__":
    main()
