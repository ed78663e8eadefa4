"""Drifting-field benchmark: time vs B, G, P, D (eager and torch.compile) and peak memory at one size.

    .venv/bin/python benchmarks/bench_field.py time                  # Markdown table, eager only
    .venv/bin/python benchmarks/bench_field.py time --compile        # + torch.compile column
    .venv/bin/python benchmarks/bench_field.py memory                # peak extra RSS of one field call
    .venv/bin/python benchmarks/bench_field.py time --device cuda    # on a GPU when there is one
    .venv/bin/python benchmarks/bench_field.py floor                 # sign of the field between two modes

Times are the minimum over repeats of one ``drift_field`` call (official normalisation, three temperatures,
``check_finite=False`` as in a training loop), in milliseconds. On CPU they are the process's CPU time
(``time.process_time``) with one thread, which another process on a shared, loaded machine does not
inflate the way it inflates wall time; on CUDA they are synchronised wall time. One variable moves at a
time around the base size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from drifting_policy.drift import drift_field, drift_field_result

BASE = {"B": 64, "G": 64, "P": 80, "D": 32}
SWEEP = {"B": (1, 16, 64, 256), "G": (16, 64, 256), "P": (16, 80, 320), "D": (2, 32, 256)}
# Memory: one [B, G, G + P] float32 matrix at this size is 1024 * 128 * 256 * 4 B = 128 MiB.
MEMORY_SIZE = {"B": 1024, "G": 128, "P": 128, "D": 64}


def _inputs(size: dict[str, int], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    gen = torch.randn(size["B"], size["G"], size["D"], generator=generator)
    pos = torch.randn(size["B"], size["P"], size["D"], generator=generator) + 0.5
    return gen.to(device), pos.to(device)


def _field(gen: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    return drift_field(gen, pos, check_finite=False)


def time_call(function, gen: torch.Tensor, pos: torch.Tensor, repeats: int) -> float:
    """Minimum time of one call in ms (CPU time on CPU, wall time on CUDA), after two warm-up calls."""
    for _ in range(2):  # compilation happens here
        function(gen, pos)
    clock = time.perf_counter if gen.is_cuda else time.process_time
    best = float("inf")
    for _ in range(repeats):
        if gen.is_cuda:
            torch.cuda.synchronize()
        start = clock()
        function(gen, pos)
        if gen.is_cuda:
            torch.cuda.synchronize()
        best = min(best, clock() - start)
    return best * 1e3


def bench_time(device: str, with_compile: bool, repeats: int) -> str:
    header = "| B | G | P | D | [B,G,G+P] MiB | eager ms |" + (" compiled ms |" if with_compile else "")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    sizes = [{**BASE, name: value} for name, values in SWEEP.items() for value in values]
    sizes = [dict(s) for s in {tuple(s.items()): s for s in sizes}.values()]  # drop repeats of BASE
    for size in sizes:
        gen, pos = _inputs(size, device)
        matrix_mib = size["B"] * size["G"] * (size["G"] + size["P"]) * 4 / 2**20
        row = f"| {size['B']} | {size['G']} | {size['P']} | {size['D']} | {matrix_mib:.2f} | "
        row += f"{time_call(_field, gen, pos, repeats):.3f} |"
        if with_compile:
            # A fresh compile per size: dynamo falls back to eager silently after 8 recompilations.
            torch.compiler.reset()
            compiled = torch.compile(_field, dynamic=False)
            try:
                row += f" {time_call(compiled, gen, pos, repeats):.3f} |"
            except Exception as error:  # report why compile failed on this machine, keep the eager numbers
                row += f" failed: {type(error).__name__} |"
        lines.append(row)
        print(row, file=sys.stderr, flush=True)
    return "\n".join(lines)


def _measure_memory_child(device: str) -> None:
    """Runs in a fresh process: peak RSS growth of one field call beyond the inputs."""
    gen, pos = _inputs(MEMORY_SIZE, device)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    field = _field(gen, pos)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = MEMORY_SIZE
    matrix_mib = size["B"] * size["G"] * (size["G"] + size["P"]) * 4 / 2**20
    print(json.dumps({**size, "peak_extra_mib": (after - before) / 1024, "matrix_mib": matrix_mib,
                      "output_mib": field.numel() * 4 / 2**20}))


def bench_memory() -> str:
    child = subprocess.run([sys.executable, __file__, "_memory_child"], check=True, capture_output=True,
                           text=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    ratio = result["peak_extra_mib"] / result["matrix_mib"]
    return (f"B={result['B']} G={result['G']} P={result['P']} D={result['D']}: peak extra RSS "
            f"{result['peak_extra_mib']:.0f} MiB = {ratio:.2f} x one [B,G,G+P] float32 matrix "
            f"({result['matrix_mib']:.0f} MiB); field output {result['output_mib']:.0f} MiB")


def bench_floor() -> str:
    """Between-modes diagnostic: does the field push samples sitting between two modes outwards?

    Generated samples ~ N(0, 0.3^2 I) between modes at (+-3, 0) (std 0.3). The outward component
    mean(V_x * sign(x)) / RMS(V) with the official normalisation is compared with the same logits and
    kernel without the affinity floor (normalize=False at tau * feature scale: only the floor and the global
    RMS factor differ, and a positive factor does not change a sign).
    """
    lines = ["| G = P | tau | outward, official | outward, no floor |", "|---|---|---|---|"]
    for size in (16, 128, 512):
        generator = torch.Generator().manual_seed(0)
        gen = torch.randn(1, size, 2, generator=generator) * 0.3  # [1, G, 2]
        side = torch.randint(0, 2, (1, size), generator=generator) * 2.0 - 1.0
        pos = torch.randn(1, size, 2, generator=generator) * 0.3
        pos[..., 0] += 3.0 * side
        sign = gen[0, :, 0].sign()
        for tau in (0.02, 0.05, 0.2):
            official = drift_field_result(gen, pos, temperatures=(tau,))
            no_floor = drift_field(gen, pos, temperatures=(tau * float(official.scale),), normalize=False)
            outward = [float((v[0, :, 0] * sign).mean() / v.square().mean().sqrt())
                       for v in (official.field, no_floor)]
            lines.append(f"| {size} | {tau} | {outward[0]:+.2f} | {outward[1]:+.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("time", "memory", "floor", "_memory_child"))
    parser.add_argument("--compile", action="store_true", help="add a torch.compile column")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "time":
        print(bench_time(args.device, args.compile, args.repeats))
    elif args.what == "memory":
        print(bench_memory())
    elif args.what == "floor":
        print(bench_floor())
    else:
        _measure_memory_child(args.device)


if __name__ == "__main__":
    main()
