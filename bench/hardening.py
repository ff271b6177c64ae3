"""Counted hardening: 100,000 seeded cases for each parser that takes bytes from outside, counted.

    .venv/bin/python bench/hardening.py [--cases 100000] [--seed 14] [--parsers request,model,...]
                                        [--bound 2.0] [--jobs 1]
    .venv/bin/python bench/hardening.py --replay PARSER SEED INDEX   # one case again, with its traceback

The cases and the exercises are tests/hardening.py's (the CI test runs a few thousand of each).
Each parser runs in a process of its own under a watchdog: a case that stops making progress for
--watchdog seconds (a hang the in-process alarm cannot stop, inside C code) is killed and counted as
a hang, and the run goes on after it; the process's address space is capped so that a runaway
allocation surfaces as MemoryError.

Prints a table: per parser, accepted inputs, typed refusals, other exceptions (must be 0), hangs
and slow cases (must be 0), the median and the slowest case in CPU time (the bound is on CPU time,
the machine being shared) and the longest by the clock, cases per second, the largest traced peak
of a sampled case and the process's peak RSS. Exits 1 if anything but accepted inputs and typed
refusals happened.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import hardening  # noqa: E402
from hardening import PARSERS, Failure, Result  # noqa: E402

CHUNK = 2000  # cases a worker reports at a time: a killed worker loses at most these, run again


def _cap_address_space(extra: int) -> None:
    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, resource.RLIM_INFINITY))


def _worker(name: str, seed: int, start: int, stop: int, skip: set, options: dict, position, connection) -> None:
    _cap_address_space(options["address_space"])
    try:
        _cases(name, seed, start, stop, skip, options, position, connection)
    finally:  # a worker process ends without atexit handlers: remove the served folder here
        if hardening._ROOT is not None:
            shutil.rmtree(hardening._ROOT, True)


def _cases(name: str, seed: int, start: int, stop: int, skip: set, options: dict, position, connection) -> None:
    parser = PARSERS[name]()

    def progress(index: int) -> None:
        position.value = index

    index = start
    while index < stop:
        end = min(stop, (index // CHUNK + 1) * CHUNK)
        part = Result(name, seed)
        run_from = index
        while run_from < end:  # cases named in skip (hangs already counted) are left out
            upto = next((s for s in sorted(skip) if run_from <= s < end), end)
            if upto > run_from:
                part.merge(hardening.run(parser, upto - run_from, seed, options["bound"], run_from,
                                         options["memory_every"], progress=progress))
            run_from = upto + 1 if upto < end else end
        connection.send((end, part))
        index = end
    connection.send(None)


def run_parser(name: str, cases: int, seed: int, options: dict, report) -> Result:
    """All cases of one parser, in worker processes; a hung or crashed worker is replaced."""
    context = multiprocessing.get_context("fork")
    total = Result(name, seed)
    start, skip = 0, set()
    began = time.perf_counter()
    while start < cases:
        receiver, sender = context.Pipe(duplex=False)
        position = context.Value("q", start)
        worker = context.Process(target=_worker, args=(name, seed, start, cases, skip, options, position, sender),
                                 daemon=True)
        worker.start()
        sender.close()
        last, moved = position.value, time.monotonic()
        while True:
            message = "nothing"
            if receiver.poll(1.0):
                try:
                    message = receiver.recv()
                except EOFError:
                    message = "died"
            if message is None:  # all done
                worker.join()
                start = cases
                break
            if isinstance(message, tuple):  # a chunk of cases
                start, part = message
                total.merge(part)
                report(name, total, cases)
                continue
            if message == "died" or not worker.is_alive():
                worker.join()
                stuck = position.value
                total.failures.append(Failure(name, seed, stuck, "crash", f"worker exited with {worker.exitcode}"))
                total.cases += 1
                total.other += 1
                skip.add(stuck)
                break
            if position.value != last:
                last, moved = position.value, time.monotonic()
            elif time.monotonic() - moved > options["watchdog"]:
                worker.kill()
                worker.join()
                stuck = position.value
                total.failures.append(Failure(name, seed, stuck, "hang", f"no progress for {options['watchdog']} s; "
                                              "worker killed"))
                total.hangs += 1
                total.cases += 1
                skip.add(stuck)
                break
        receiver.close()
    total.seconds = time.perf_counter() - began  # wall time, setups and restarts included
    return total


def table(results: list[Result]) -> str:
    header = ("parser", "cases", "accepted", "refused", "other", "hangs", "slow", "median ms", "slowest ms (case)",
              "slowest wall ms", "cases/s", "traced MiB", "RSS MiB", "seconds")
    rows = [header]
    for r in results:
        slow = sum(1 for f in r.failures if f.kind == "slow")
        rows.append((r.parser, f"{r.cases:,}", f"{r.accepted:,}", f"{r.refused:,}", str(r.other), str(r.hangs),
                     str(slow), f"{r.median * 1000:.2f}", f"{r.slowest * 1000:.0f} (#{r.slowest_index})",
                     f"{r.slowest_wall * 1000:.0f}",
                     f"{r.cases / r.seconds:,.0f}" if r.seconds else "-", f"{r.traced_peak / 2**20:.1f}",
                     f"{r.rss_peak / 1024:.0f}", f"{r.seconds:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def replay(name: str, seed: int, index: int) -> None:
    import logging
    import traceback

    logging.basicConfig(level=logging.INFO)
    parser = PARSERS[name]()
    case = hardening.make_case(parser, seed, index)
    print(f"{name} seed {seed} case {index}: {repr(case)[:2000]}")
    started = time.perf_counter()
    try:
        outcome = parser.exercise(case)
        print(f"accepted ({outcome})" if outcome else "accepted")
    except parser.typed as error:
        print(f"refused: {type(error).__name__}: {error}")
    except BaseException:  # noqa: BLE001 - shown, this is what a replay is for
        traceback.print_exc()
    print(f"{(time.perf_counter() - started) * 1000:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000, help="cases per parser (default 100,000)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--parsers", default=",".join(PARSERS), help="comma-separated, of " + ", ".join(PARSERS))
    parser.add_argument("--bound", type=float, default=2.0, help="CPU seconds a case may take (default 2)")
    parser.add_argument("--watchdog", type=float, default=60.0, help="seconds without progress that make a hang")
    parser.add_argument("--memory-every", type=int, default=16, help="trace the memory of every n-th case")
    parser.add_argument("--address-space", type=int, default=3072, help="MiB a worker may map beyond its start")
    parser.add_argument("--jobs", type=int, default=1, help="parsers run at once (the machine's cores are shared)")
    parser.add_argument("--replay", nargs=3, metavar=("PARSER", "SEED", "INDEX"))
    args = parser.parse_args()
    if args.replay:
        replay(args.replay[0], int(args.replay[1]), int(args.replay[2]))
        return 0
    names = [n.strip() for n in args.parsers.split(",") if n.strip()]
    unknown = [n for n in names if n not in PARSERS]
    if unknown:
        parser.error(f"unknown parsers {unknown}; known: {', '.join(PARSERS)}")
    options = {"bound": args.bound, "watchdog": args.watchdog, "memory_every": args.memory_every,
               "address_space": args.address_space << 20}
    shown = {}

    def report(name: str, total: Result, cases: int) -> None:
        now = time.monotonic()
        if now - shown.get(name, 0) > 30 or total.cases >= cases:
            shown[name] = now
            print(f"  {name}: {total.cases:,}/{cases:,} cases, {total.other} other, {total.hangs} hangs",
                  file=sys.stderr, flush=True)

    print(f"seed {args.seed}, {args.cases:,} cases per parser, bound {args.bound} s per case, "
          f"watchdog {args.watchdog} s, memory traced every {args.memory_every} cases", flush=True)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda n: run_parser(n, args.cases, args.seed, options, report), names))
    print(table(results))
    print(f"total {time.perf_counter() - started:.0f} s")
    failed = False
    for r in results:
        print(f"{r.parser} refusals: " + ", ".join(f"{k} {v:,}" for k, v in r.refusal_kinds.most_common()))
        if r.failures:
            failed = True
            print(f"{r.parser}: {len(r.failures)} failures (replay with --replay {r.parser} {r.seed} INDEX):")
            for failure in r.failures[:25]:
                print(f"  {failure}")
    return 1 if failed or any(r.other or r.hangs for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
