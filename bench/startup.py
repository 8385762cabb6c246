"""Benchmark: start-up of the CLI beside bare Python, timed as fresh processes, interleaved.

Each round runs, one after another: `python -c pass` (the baseline), `crewq --help`, `crewq validate`
of the demo crew, and `crewq run` of a one-agent crew whose only LLM call takes 0.5 s (embedded: a
private Redis, an in-process worker). Targets: --help <= bare + 0.25 s, validate <= bare + 0.5 s,
the whole `crewq run` of the 0.5 s crew <= 1.5 s. `python -X importtime -m crewq --help` shows
where an import's time goes.

    .venv/bin/python bench/startup.py [--repeat 7] [--against /work/main]

`--against CHECKOUT` adds the same three commands from another checkout's `.venv` (the code before a
change), interleaved in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CREWQ = str(Path(sys.executable).with_name("crewq"))
CREW = "runtime: {name: half, llm_provider: scripted}\nagents:\n  - {id: solo, script: [{latency: 0.5s, text: done}]}\n"


def timed(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-400:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--against", type=Path, help="another checkout, run from its .venv beside this one")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("CREWQ_REDIS_URL", "REDIS_URL")}  # embedded run
    with tempfile.TemporaryDirectory() as folder:
        crew = Path(folder) / "half.yaml"
        crew.write_text(CREW, encoding="utf-8")
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "crewq --help": [CREWQ, "--help"],
            "crewq validate demo.yaml": [CREWQ, "validate", str(ROOT / "config" / "crews" / "demo.yaml")],
            "crewq run (0.5 s crew)": [CREWQ, "run", str(crew)],
        }
        if args.against:
            other = str(args.against / ".venv" / "bin" / "crewq")
            cases |= {"against: crewq --help": [other, "--help"],
                      "against: crewq validate": [other, "validate", str(args.against / "config" / "crews" / "demo.yaml")],
                      "against: crewq run": [other, "run", str(crew)]}
        for argv in cases.values():  # warm-up: the page cache, .pyc files
            timed(argv, env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeat):
            for name, argv in cases.items():
                times[name].append(timed(argv, env))
    median = {name: statistics.median(t) for name, t in times.items()}
    bare = median["python -c pass"]
    print(f"load: {os.getloadavg()[0]:.2f} (1 min); median of {args.repeat} fresh processes each, interleaved")
    for name, took in median.items():
        print(f"{name:<28} {took:7.3f} s  (+{took - bare:.3f} s over bare python; min {min(times[name]):.3f})")
    print(f"start-up over bare python: --help +{median['crewq --help'] - bare:.3f} s (target <= 0.25), "
          f"validate +{median['crewq validate demo.yaml'] - bare:.3f} s (target <= 0.5), "
          f"run of a 0.5 s crew {median['crewq run (0.5 s crew)']:.3f} s (target <= 1.5)")


if __name__ == "__main__":
    main()
