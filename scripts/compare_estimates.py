#!/usr/bin/env python3
"""Pairs `orchestrate --json plan`'s estimates with the durations `orchestrate --json ls`
reports for the same keys after the run: per task, per kind, and the total."""
import json, sys, statistics
from collections import defaultdict

def load_json_docs(path):
    text = open(path).read().strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(l) for l in text.splitlines() if l.strip()]

plan = load_json_docs(sys.argv[1])
listed = load_json_docs(sys.argv[2])
if isinstance(plan, list):
    plan = plan[0]
tasks = plan["tasks"] if "tasks" in plan else plan["experiments"][0]["tasks"]
if isinstance(listed, dict):
    listed = listed.get("artifacts", listed.get("entries", []))
actual = {a["key"]: a["duration_s"] for a in listed if "duration_s" in a}

rows, by_kind = [], defaultdict(lambda: [0.0, 0.0, 0])
for t in tasks:
    est = t.get("estimated_s")
    act = actual.get(t["key"])
    if est is None or act is None:
        rows.append((t["task"], t["kind"], est, act, None))
        continue
    rows.append((t["task"], t["kind"], est, act, est / act if act > 0 else None))
    k = by_kind[t["kind"]]
    k[0] += est; k[1] += act; k[2] += 1

def fmt(s):
    if s is None: return "–"
    return f"{s:.1f} s" if s < 120 else f"{s/60:.1f} min"

print("| task | kind | estimate | actual | estimate/actual |\n|---|---|---:|---:|---:|")
for task, kind, est, act, ratio in rows:
    print(f"| {task} | {kind} | {fmt(est)} | {fmt(act)} | {'–' if ratio is None else f'{ratio:.2f}'} |")
print("\n| kind | tasks | estimate | actual | estimate/actual |\n|---|---:|---:|---:|---:|")
for kind, (e, a, n) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
    print(f"| {kind} | {n} | {fmt(e)} | {fmt(a)} | {e/a:.2f} |")
te = sum(v[0] for v in by_kind.values()); ta = sum(v[1] for v in by_kind.values())
ratios = [r for *_, r in rows if r]
print(f"\ntotal: estimate {fmt(te)}, actual {fmt(ta)} (sum of task durations), ratio {te/ta:.2f}")
print(f"per task: median |estimate/actual - 1| = {statistics.median(abs(r-1) for r in ratios):.2f}, "
      f"within ±25%: {sum(abs(r-1) <= .25 for r in ratios)}/{len(ratios)}, "
      f"without estimate: {sum(1 for r in rows if r[2] is None)}")
