"""Writes the tiny Parquet fixtures under tests/fixtures/hub/ from tests/fixtures/tiny/*.csv:
stand-ins, under the real schemas, for the hub datasets the seed experiments name.

  imdb/plain_text/{train,test}-00000-of-00001.parquet   text: string, label: int64 (0 neg, 1 pos)
  yelp_polarity/plain_text/{train,test}-00000-of-00001.parquet   label: int64, text: string
  reviews.parquet                                        review: string, label: int64

Run with any Python that has pyarrow: `python scripts/make_dataset_fixtures.py`.
"""
import csv
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "fixtures" / "tiny"
OUT = ROOT / "tests" / "fixtures" / "hub"


def rows(split):
    with open(TINY / f"{split}.csv", newline="") as f:
        return [(r["review"], int(r["label"])) for r in csv.DictReader(f)]


def write(path, table):
    path.parent.mkdir(parents=True, exist_ok=True)
    # Snappy, as the hub's Parquet export writes it.
    pq.write_table(table, path, compression="snappy")


for split, name in [("train", "train"), ("eval", "test")]:
    data = rows(split)
    texts = [t for t, _ in data]
    labels = [l for _, l in data]
    write(
        OUT / "imdb" / "plain_text" / f"{name}-00000-of-00001.parquet",
        pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, pa.int64())}),
    )
    write(
        OUT / "yelp_polarity" / "plain_text" / f"{name}-00000-of-00001.parquet",
        pa.table({"label": pa.array(labels, pa.int64()), "text": pa.array(texts, pa.string())}),
    )
data = rows("train")
write(
    OUT / "reviews.parquet",
    pa.table({"review": [t for t, _ in data], "label": pa.array([l for _, l in data], pa.int64())}),
)
