"""Generate tests/data/paths.csv and the ChannelAttribution reference numbers.

Command (from the crate root, ChannelAttribution 2.2.5 from PyPI):

    python3 tests/data/make_reference.py

Writes tests/data/paths.csv (seeded, so re-running gives the same file) and
tests/data/channelattribution_expected.json. ChannelAttribution's markov_model
estimates removal effects by simulation; it is run with several seeds so that the
JSON records both the mean and the spread (standard deviation across seeds) that the
Rust test uses to justify its tolerance.
"""

import json
import os
import random
import statistics

import pandas as pd
from ChannelAttribution import heuristic_models, markov_model

HERE = os.path.dirname(os.path.abspath(__file__))
CSV = os.path.join(HERE, "paths.csv")
OUT = os.path.join(HERE, "channelattribution_expected.json")

CHANNELS = ["Organic Search", "Paid Search", "Email", "Direct", "Paid Social", "Referral"]
# Per-touch lift in conversion odds, so that channels differ in the models.
LIFT = {"Organic Search": 1.3, "Paid Search": 1.6, "Email": 2.0, "Direct": 1.1,
        "Paid Social": 0.8, "Referral": 1.2}
# ChannelAttribution seeds fold k of a run with seed + k (nfold = 10 folds), so seeds
# closer than 10 apart share random streams; these are far apart.
SEEDS = [1, 1001, 2001, 3001, 4001]
NSIM = 4_000_000
MARKOV_ORDERS = [1, 3]


def generate():
    rng = random.Random(20261124)
    rows = {}
    while len(rows) < 300:
        length = min(1 + int(rng.expovariate(0.45)), 9)
        path = [rng.choices(CHANNELS, weights=[5, 4, 3, 3, 2, 2])[0] for _ in range(length)]
        key = " > ".join(path)
        users = rng.randint(1, 40)
        odds = 0.05
        for channel in path:
            odds *= LIFT[channel]
        p = odds / (1 + odds)
        conversions = sum(rng.random() < p for _ in range(users))
        value = round(sum(rng.uniform(20, 120) for _ in range(conversions)), 2)
        if key in rows:
            continue
        rows[key] = (conversions, value, users - conversions)
    with open(CSV, "w") as f:
        f.write("path,total_conversions,total_conversion_value,total_null\n")
        for key, (conv, value, null) in rows.items():
            f.write(f"{key},{conv},{value},{null}\n")


def as_map(frame, column):
    return {row["channel_name"]: float(row[column]) for _, row in frame.iterrows()}


def main():
    generate()
    data = pd.read_csv(CSV)
    heuristic = heuristic_models(data, "path", "total_conversions",
                                 var_value="total_conversion_value", flg_pro=False)
    expected = {
        "source": "ChannelAttribution 2.2.5 (PyPI)",
        "command": "python3 tests/data/make_reference.py",
        "heuristic": {
            column: as_map(heuristic, column)
            for column in heuristic.columns if column != "channel_name"
        },
        "markov": {},
    }
    for order in MARKOV_ORDERS:
        runs = []
        for seed in SEEDS:
            result = markov_model(data, "path", "total_conversions",
                                  var_value="total_conversion_value", var_null="total_null",
                                  order=order, nsim_start=NSIM, max_step=100000,
                                  out_more=True, seed=seed, verbose=False, flg_pro=False)
            runs.append({
                "conversions": as_map(result["result"], "total_conversions"),
                "value": as_map(result["result"], "total_conversion_value"),
                "removal_effects": as_map(result["removal_effects"], "removal_effects_conversion"),
            })
        summary = {"seeds": SEEDS, "nsim_start": NSIM}
        for key in ["conversions", "value", "removal_effects"]:
            channels = runs[0][key].keys()
            summary[key] = {c: statistics.mean(r[key][c] for r in runs) for c in channels}
            summary[key + "_sd"] = {c: statistics.stdev(r[key][c] for r in runs) for c in channels}
        expected["markov"][f"order_{order}"] = summary
    with open(OUT, "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
