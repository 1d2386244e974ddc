"""Loader case `remote`: the same shards streamed from local disk, loopback HTTP and loopback
S3 (moto's S3 server), by mmpretrain's `WebDataModule` and by open_clip's loader with its own
URL conventions (an `http://` brace pattern, which webdataset opens with `curl`, and
`pipe:curl -sfL ...`). All trials are interleaved per round. Loopback removes network
bandwidth and latency, so what remains is each reader's own cost of remote streaming.

    python benchmarks/run.py --suites loader --rounds 2
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from benchmarks.common import column, interleave, paired_ratio, print_table, summarize
from benchmarks.shards import shard_pattern


def run_remote(shards: Path, case, rounds: int) -> dict[str, Any]:
    from benchmarks.loader import mmpretrain_loader, open_clip_loader, time_loader
    from tests.remote_servers import ShardHTTPServer, moto_s3, upload_directory

    pattern = Path(shard_pattern(shards)).name
    with ShardHTTPServer(shards.parent) as http, moto_s3():
        upload_directory(shards, "bench", shards.name)
        http_spec = f"{http.url}/{shards.name}/{pattern}"
        trials = {
            "mmpretrain local": lambda: time_loader(mmpretrain_loader(shards, case), case),
            "mmpretrain http": lambda: time_loader(mmpretrain_loader(http_spec, case), case),
            "mmpretrain s3": lambda: time_loader(mmpretrain_loader(f"s3://bench/{shards.name}/", case), case),
            "open_clip local": lambda: time_loader(open_clip_loader(shards, case), case),
        }
        if shutil.which("curl"):
            trials["open_clip http"] = lambda: time_loader(open_clip_loader(http_spec, case), case)
            trials["open_clip pipe:curl"] = lambda: time_loader(
                open_clip_loader(f"pipe:curl -sfL {http_spec}", case), case)
        print(f"  loader remote: {case.name} over loopback HTTP and S3", flush=True)
        measured = interleave(trials, rounds)
    local = column(measured["mmpretrain local"], "samples_per_s")
    rows, summary = [], {}
    for name, results in measured.items():
        values = column(results, "samples_per_s")
        summary[name] = {**summarize(values), "vs_mmpretrain_local": paired_ratio(values, local)}
        rows.append([name, summary[name]["median"], summary[name]["vs_mmpretrain_local"]["median_of_round_ratios"]])
    for ours, theirs in (("mmpretrain http", "open_clip http"), ("mmpretrain http", "open_clip pipe:curl")):
        if theirs in measured:
            ratio = paired_ratio(column(measured[ours], "samples_per_s"), column(measured[theirs], "samples_per_s"))
            summary[f"{ours} / {theirs}"] = ratio
            rows.append([f"{ours} / {theirs}", None, ratio["median_of_round_ratios"]])
    table = print_table(f"loader remote: samples/s, {case.name} (median of interleaved rounds)",
                        ["trial", "samples/s", "ratio"], rows)
    return {"case": case.name, "trials": summary, "table": table}
