#!/usr/bin/env python3
"""Make the tiny parity fixtures under tests/fixtures/models/ with Hugging Face transformers.

Run in a venv with the full torch install (not .venv-torch, which cannot `import torch`):

    python3 -m venv .venv-hf
    .venv-hf/bin/pip install torch==2.11.0 transformers safetensors
    .venv-hf/bin/python scripts/make_model_fixtures.py

Weights use initializer_range=0.2 (not 0.02) so attention is far from uniform and a
masking bug would show. For each of tiny-distilbert and tiny-bert (2 layers, hidden 32, 4 heads, vocab 64) it writes
a HF model folder (config.json, model.safetensors, tokenizer.json, vocab.txt, ...) and
expected.safetensors holding the inputs (a padded batch) and transformers' eval-mode
logits and hidden states, plus module_tree.txt = print(model). Seeds are fixed; the output
is deterministic for a given torch/transformers version (recorded in versions.json).
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "models")

WORDS = ("the a movie film was is great bad good awful plot actor acting story "
         "not very really boring loved hated it this and of to end").split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIAL + WORDS + [c for c in "abcdefghijklmnopqrstuvwxyz"] + ["##s", "##ed", "##ing", ".", ","]
VOCAB_SIZE = 64
assert len(VOCAB) <= VOCAB_SIZE, len(VOCAB)

# config.json of the hub model distilbert-base-uncased, verbatim.
DISTILBERT_BASE_UNCASED = {
    "activation": "gelu",
    "architectures": ["DistilBertForMaskedLM"],
    "attention_dropout": 0.1,
    "dim": 768,
    "dropout": 0.1,
    "hidden_dim": 3072,
    "initializer_range": 0.02,
    "max_position_embeddings": 512,
    "model_type": "distilbert",
    "n_heads": 12,
    "n_layers": 6,
    "pad_token_id": 0,
    "qa_dropout": 0.1,
    "seq_classif_dropout": 0.2,
    "sinusoidal_pos_embds": False,
    "tie_weights_": True,
    "transformers_version": "4.10.0.dev0",
    "vocab_size": 30522,
}

SENTENCES = [
    "the movie was great",
    "this film was really boring and the plot was bad",
    "loved it",
]


def write_tokenizer(folder):
    """A lowercasing BERT WordPiece tokenizer over VOCAB, built with the tokenizers library
    (transformers 5 ignores BertTokenizerFast(vocab_file=...))."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, decoders

    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    vocab = {t: i for i, t in enumerate(VOCAB)}
    tk = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tk.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                               strip_accents=None, lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.post_processor = processors.BertProcessing(("[SEP]", vocab["[SEP]"]), ("[CLS]", vocab["[CLS]"]))
    tk.decoder = decoders.WordPiece(prefix="##")
    tok = BertTokenizerFast(tokenizer_object=tk, do_lower_case=True, model_max_length=64,
                            unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                            cls_token="[CLS]", mask_token="[MASK]")
    tok.save_pretrained(folder)
    ids = tok(["the movie was great"])["input_ids"][0]
    assert ids == [2, 5, 7, 9, 11, 3], ids
    return tok


def make(name, model, tok):
    folder = os.path.join(OUT, name)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert (mask == 0).any(), "the batch must contain padding"
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    tensors = {
        "input_ids": ids.contiguous(),
        "attention_mask": mask.contiguous(),
        "logits": out.logits.contiguous(),
    }
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h.contiguous()
    save_file(tensors, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "module_tree.txt"), "w") as f:
        f.write(str(model) + "\n")
    print(f"{name}: logits {tuple(out.logits.shape)}, {len(out.hidden_states)} hidden states")


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)

    tok = write_tokenizer(os.path.join(OUT, "tiny-distilbert"))
    cfg = DistilBertConfig(vocab_size=VOCAB_SIZE, max_position_embeddings=64, n_layers=2,
                           n_heads=4, dim=32, hidden_dim=37, num_labels=2,
                           initializer_range=0.2)
    torch.manual_seed(1)
    model = DistilBertForSequenceClassification(cfg)
    make("tiny-distilbert", model, tok)

    tok = write_tokenizer(os.path.join(OUT, "tiny-bert"))
    cfg = BertConfig(vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=37, max_position_embeddings=64,
                     num_labels=3, initializer_range=0.2)
    torch.manual_seed(2)
    model = BertForSequenceClassification(cfg)
    make("tiny-bert", model, tok)

    # The default distilbert-base-uncased config (no weights) for the parameter-count tests.
    base = os.path.join(OUT, "distilbert-base-uncased-config")
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(base, "config.json"), "w") as f:
        json.dump(DISTILBERT_BASE_UNCASED, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(base, "module_tree.txt"), "w") as f:
        f.write(str(DistilBertForSequenceClassification(DistilBertConfig())) + "\n")

    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "python": sys.version.split()[0]}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
