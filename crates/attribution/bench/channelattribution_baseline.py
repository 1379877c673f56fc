"""Baseline for examples/bench_paths.rs: ChannelAttribution on the same paths.

Usage: python3 bench/channelattribution_baseline.py PATHS.csv

Loads the CSV with pandas (not timed), then times heuristic_models plus an order-1
markov_model with ChannelAttribution's defaults (nsim_start=1e5, one core), and prints
one JSON line: {"baseline_s": ..., "heuristic_s": ..., "markov_s": ...}.
"""

import json
import sys
import time

import pandas as pd
from ChannelAttribution import heuristic_models, markov_model

data = pd.read_csv(sys.argv[1])
start = time.perf_counter()
heuristic_models(data, "path", "total_conversions", var_value="total_conversion_value",
                 flg_pro=False)
middle = time.perf_counter()
markov_model(data, "path", "total_conversions", var_value="total_conversion_value",
             var_null="total_null", order=1, verbose=False, flg_pro=False)
end = time.perf_counter()
print(json.dumps({"baseline_s": end - start, "heuristic_s": middle - start,
                  "markov_s": end - middle}))
