"""One Hugging Face (or scikit-learn) job of the speed benchmark; bench/bench.py runs each in
its own process (so that its peak RSS is its own) and reads the JSON it writes.

Variants, as issue 8 defines them:
  seed  (a) the seed recipe: the tokenizer with padding=True inside datasets.map (so every
        1,000-row chunk is padded to its longest review), Trainer defaults;
  best  (b) HF best practice: no padding in map, DataCollatorWithPadding (dynamic padding)
        and group_by_length=True; with --bf16 it is (e), the same with Trainer's bf16=True
        (autocast to bfloat16 on CPU).
Methods: full (every parameter), head (pooler + classifier; the encoder frozen), lora (PEFT
LoRA on query/value), tfidf (scikit-learn TF-IDF + logistic regression / multinomial NB).

Both variants evaluate after every epoch and once more at the end, as orchestrate's
finetune does, and save the trained model once, as orchestrate saves its checkpoint. The
training time excludes the per-epoch evaluations (orchestrate's `train_time_s` does too).

Usage: python bench/hf_job.py --method full --variant seed --max-len 512 --epochs 1 \
         --train T.csv --eval E.csv --model DIR --out result.json
"""

import argparse
import json
import os
import tempfile
import time


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--method", required=True, choices=["full", "head", "lora", "tfidf"])
    p.add_argument("--variant", default="seed", choices=["seed", "best"])
    p.add_argument("--max-len", type=int, default=512)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lora-r", type=int, default=6)
    p.add_argument("--lora-alpha", type=float, default=12)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bf16", action="store_true", help="TrainingArguments(bf16=True)")
    p.add_argument("--train", required=True)
    p.add_argument("--eval", required=True)
    p.add_argument("--model", default="models/all-MiniLM-L6-v2")
    p.add_argument("--batch-order", help="train in this order: a JSON file as orchestrate's batch_order.json "
                   "(one permutation of the training rows per epoch)")
    p.add_argument("--dump-order", help="write the order the Trainer's sampler gave, in that format")
    p.add_argument("--out", required=True)
    return p.parse_args()


def ordered_sampler(base, given, recorded):
    """A training sampler that yields the Trainer's own order (`base`) or, when `given` is
    set, epoch e's order from it, and appends what it yields to `recorded`. The Trainer's
    sampler still draws its order first, as orchestrate's `batch_order` has it, so the
    dropout stream stays the run's own: fed its own dump, a run repeats itself. Not a
    RandomSampler, so accelerate leaves it as it is."""
    from torch.utils.data import Sampler

    class Ordered(Sampler):
        def __len__(self):
            return len(base)

        def __iter__(self):
            drawn = [int(i) for i in base]
            order = list(given[len(recorded)]) if given else drawn
            recorded.append(order)
            return iter(order)

    return Ordered()


def tfidf(args):
    import pandas as pd
    from sklearn_baselines import sklearn_rows  # the fit bench/baselines.sh times, unchanged

    vectorize, rows = sklearn_rows(args.train, args.eval)
    n_train, n_eval = len(pd.read_csv(args.train)), len(pd.read_csv(args.eval))
    return {
        name: {
            "accuracy": float(row["accuracy"]),
            "train_s": row["train_time_s"],
            "eval_s": row["eval_time_s"],
            "train_samples": n_train,
            "eval_samples": n_eval,
            "vectorize_s": vectorize,
        }
        for name, row in rows.items()
    }


def transformer(args):
    import numpy as np
    import torch
    from datasets import Dataset
    import pandas as pd
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    train_df, eval_df = pd.read_csv(args.train), pd.read_csv(args.eval)
    seed_recipe = args.variant == "seed"

    def tokenize(batch):
        if seed_recipe:
            # The seed recipe: padding inside map pads each 1,000-row chunk to its longest review.
            return tokenizer(batch["review"], padding=True, truncation=True, max_length=args.max_len)
        return tokenizer(batch["review"], truncation=True, max_length=args.max_len)

    def dataset(frame):
        ds = Dataset.from_pandas(frame[["review", "label"]].rename(columns={"label": "labels"}))
        return ds.map(tokenize, batched=True, remove_columns=["review"])

    started = time.perf_counter()
    train_ds, eval_ds = dataset(train_df), dataset(eval_df)
    tokenize_s = time.perf_counter() - started
    real = sum(sum(m) for m in train_ds["attention_mask"])
    padded = sum(len(m) for m in train_ds["attention_mask"])

    # Seeded before the model exists: Trainer seeds only when it starts, after the head (and
    # the LoRA matrices) would already have been drawn the same way for every --seed.
    set_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    if args.method == "head":
        for name, param in model.named_parameters():
            param.requires_grad = name.startswith(("bert.pooler.", "classifier."))
    elif args.method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        config = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            target_modules=["query", "value"],
            lora_dropout=0.0,
            # The head trains beside the adapters, pooler included, as orchestrate's `lora`
            # does by default (203,906 parameters on MiniLM; PEFT's SEQ_CLS default would
            # leave the pretrained pooler frozen: 56,066).
            modules_to_save=["pooler", "classifier"],
        )
        model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def metrics(prediction):
        return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}

    out_dir = tempfile.mkdtemp(prefix="hf-bench-")
    training_args = TrainingArguments(
        output_dir=out_dir,
        learning_rate=args.lr,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        seed=args.seed,
        eval_strategy="epoch",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        logging_steps=50,
        use_cpu=True,
        bf16=args.bf16,
        train_sampling_strategy="random" if seed_recipe else "group_by_length",
    )
    if (args.batch_order or args.dump_order) and seed_recipe:
        # accelerate swaps a plain RandomSampler for its own seedable one; a wrapper would
        # change the order it is meant to record.
        raise SystemExit("--batch-order and --dump-order are for --variant best (group_by_length)")
    recorded = []
    given = None
    if args.batch_order:
        with open(args.batch_order) as f:
            given = json.load(f)
        if given["examples"] != len(train_ds) or len(given["epochs"]) != args.epochs:
            raise SystemExit(f"{args.batch_order}: {given['examples']} examples x {len(given['epochs'])} epochs, "
                             f"the run has {len(train_ds)} x {args.epochs}")
        given = given["epochs"]

    class OrderedTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            base = super()._get_train_sampler(train_dataset)
            if given is None and not args.dump_order:
                return base
            return ordered_sampler(base, given, recorded)

    trainer = OrderedTrainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metrics,
    )
    result = trainer.train()
    in_training_evals = sum(e["eval_runtime"] for e in trainer.state.log_history if "eval_runtime" in e)
    train_s = result.metrics["train_runtime"] - in_training_evals
    final = trainer.evaluate()
    trainer.save_model(os.path.join(out_dir, "final"))
    if args.dump_order:
        with open(args.dump_order, "w") as f:
            json.dump({"examples": len(train_ds), "batch_size": args.batch_size, "epochs": recorded}, f)
    return {
        args.method: {
            "accuracy": final["eval_accuracy"],
            "eval_loss": final["eval_loss"],
            "train_loss": result.metrics["train_loss"],
            "train_s": train_s,
            "eval_s": final["eval_runtime"],
            "train_samples": len(train_df) * args.epochs,
            "eval_samples": len(eval_df),
            "tokenize_s": tokenize_s,
            "train_real_token_fraction": real / padded,
            "trainable_params": trainable,
            "torch_threads": torch.get_num_threads(),
        }
    }


def main():
    args = parse()
    rows = tfidf(args) if args.method == "tfidf" else transformer(args)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
