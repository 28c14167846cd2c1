"""Success against K and against milliseconds per chunk, from ``s2kit eval --out`` folders of ``mpc`` runs.

Each folder is one (scorer, K) evaluation; its ``eval.json`` gives the mean subtask success with its 95% interval
over every suite it ran, and the milliseconds a chunk took (the median over episodes of each episode's median ``act``
time: the inner executor, the candidates and their scoring; the first call's warm-up is not in a median). Writes a PNG
with the two panels and prints the table.

    .venv/bin/python scripts/diagnostics/mpc_sweep_plot.py --out runs/mpc_sweep.png critic=runs/k/critic_* sim=runs/k/sim_* bare=runs/k/bare
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def point(folder: Path, suite: str | None = None) -> dict[str, float]:
    """K, mean subtask success and interval, and ms per step of one evaluation (``suite``'s episodes, or every suite's
    pooled)."""
    report = json.loads((folder / "eval.json").read_text())
    overrides = dict(item.split("=", 1) for item in report["settings"]["set"])
    summaries = [s["summary"] for name, s in report["suites"].items() if suite is None or name == suite]
    episodes = sum(s["episodes"] for s in summaries)
    success = sum(s["subtask_success"]["mean"] * s["episodes"] for s in summaries) / episodes
    low = sum(s["subtask_success"]["low"] * s["episodes"] for s in summaries) / episodes
    high = sum(s["subtask_success"]["high"] * s["episodes"] for s in summaries) / episodes
    chunk_ms = sorted(e["timings"]["act"]["p50_ms"] for name, s in report["suites"].items() if suite is None or name == suite
                      for e in s["episodes"] if "act" in e["timings"])  # fmt: skip
    ms = chunk_ms[len(chunk_ms) // 2] if chunk_ms else float("nan")
    k = int(overrides.get("executor.candidates", 8 if report["settings"]["executor"] == "mpc" else 1))
    return {"k": k, "success": success, "low": low, "high": high, "chunk_ms": ms, "episodes": episodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("series", nargs="+", help="NAME=FOLDER[,FOLDER...]: one line of the plot (e.g. critic=runs/k/critic_1,...).")
    parser.add_argument("--out", type=Path, required=True, help="The PNG to write.")
    parser.add_argument("--suite", default=None, help="Only this suite's episodes (default: every suite's, pooled).")
    args = parser.parse_args()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    FigureCanvasAgg(fig)
    by_k, by_ms = fig.subplots(1, 2)
    print("| series | K | episodes | mean subtask success [95% CI] | ms per chunk |")
    print("| --- | --- | --- | --- | --- |")
    for spec in args.series:
        name, folders = spec.split("=", 1)
        points = sorted((point(Path(f), args.suite) for f in folders.split(",")), key=lambda p: p["k"])
        for p in points:
            print(f"| {name} | {p['k']} | {p['episodes']} | {100 * p['success']:.1f}% [{100 * p['low']:.0f}, {100 * p['high']:.0f}] | {p['chunk_ms']:.1f} |")
        ks, ys = [p["k"] for p in points], [100 * p["success"] for p in points]
        errors = [[100 * (p["success"] - p["low"]) for p in points], [100 * (p["high"] - p["success"]) for p in points]]
        by_k.errorbar(ks, ys, yerr=errors, marker="o", capsize=3, label=name)
        by_ms.errorbar([p["chunk_ms"] for p in points], ys, yerr=errors, marker="o", capsize=3, label=name)
    by_k.set(xscale="log", xlabel="candidates K", ylabel="mean subtask success (%)")
    by_ms.set(xlabel="ms per chunk (median)", ylabel="mean subtask success (%)")
    by_k.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
