"""scikit-learn on the same CSVs as experiments/baselines.toml, side by side with orchestrate.

Usage: python bench/sklearn_baselines.py ORCHESTRATE_JSON_LINES
(bench/baselines.sh creates the venv, runs orchestrate with --json and calls this.)
"""
import json
import sys
import time

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.naive_bayes import MultinomialNB


def sklearn_rows(train_csv, eval_csv):
    train, evals = pd.read_csv(train_csv), pd.read_csv(eval_csv)
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(max_features=5000)
    x_train = vectorizer.fit_transform(train["review"])
    x_eval = vectorizer.transform(evals["review"])
    vectorize = time.perf_counter() - start
    rows = {}
    for name, model in [("logreg", LogisticRegression(max_iter=1000)), ("naive_bayes", MultinomialNB())]:
        start = time.perf_counter()
        model.fit(x_train, train["label"])
        fit = time.perf_counter() - start
        start = time.perf_counter()
        predicted = model.predict(x_eval)
        predict = time.perf_counter() - start
        rows[name] = {
            "accuracy": accuracy_score(evals["label"], predicted),
            "f1": f1_score(evals["label"], predicted),
            "train_time_s": fit,
            "eval_time_s": predict,
        }
    return vectorize, rows


def orchestrate_rows(json_lines):
    rows, vectorize = {}, None
    for line in open(json_lines):
        event = json.loads(line)
        if event["event"] == "task_finished" and event["task"] == "tfidf":
            vectorize = event["metrics"]["vectorize_time_s"]
        if event["event"] == "report":
            rows = {row["task"]: row["metrics"] for row in event["report"]["rows"]}
    return vectorize, rows


def main():
    sk_vectorize, sk = sklearn_rows("data/imdb/train.csv", "data/imdb/eval.csv")
    or_vectorize, orc = orchestrate_rows(sys.argv[1])
    print(f"{'baseline':<12} {'tool':<12} {'accuracy':>8} {'F1':>6} {'fit s':>8} {'predict s':>9}")
    for task in ["logreg", "naive_bayes"]:
        for tool, rows in [("scikit-learn", sk), ("orchestrate", orc)]:
            r = rows[task]
            print(f"{task:<12} {tool:<12} {r['accuracy']:>8.3f} {r['f1']:>6.3f} {r['train_time_s']:>8.3f} {r['eval_time_s']:>9.4f}")
    print(f"TF-IDF vectorising (fit + transform, both splits): scikit-learn {sk_vectorize:.3f} s, orchestrate {or_vectorize:.3f} s")
    for task in ["logreg", "naive_bayes"]:
        gap = abs(sk[task]["accuracy"] - orc[task]["accuracy"])
        print(f"{task}: accuracy gap {gap * 100:.1f} points ({'within' if gap <= 0.02 else 'OUTSIDE'} 2 points)")


if __name__ == "__main__":
    main()
