"""The fuzzing campaign: ``python bench/fuzz.py --count 100000``.

Runs cases from ``tests/fuzzing.py`` (random valid specs, mutated specs,
extremes) in worker processes, ``--jobs`` at a time, each case with a time limit
(``--timeout``; in the worker by a timer signal, and by a watchdog here that
kills a worker silent for twice as long). A worker that dies is a crash of the
case it was running; the worker is restarted after it. Prints the count of each
outcome and every distinct failure (kind, exception and place) with the first
cases that show it; ``--failures FILE`` writes each failing case's index and
outcome as JSON lines. ``--case N`` reruns case N in this process.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

from fuzzing import FAILURES  # found through the path above


def worker(seed: int, start: int, stop: int, timeout: float) -> None:
    from fuzzing import make_case, run_case

    for index in range(start, stop):
        print(f"S {index}", flush=True)
        case = make_case(seed, index)
        outcome = run_case(case, timeout=timeout, index=index, compile_every=50)
        detail = outcome.detail if outcome.failure else ""
        print(f"D {index} {json.dumps([outcome.kind, detail, case.origin])}", flush=True)


class Campaign:
    def __init__(self, args):
        self.args = args
        self.counts: collections.Counter[str] = collections.Counter()
        self.failures: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
        self.lock = threading.Lock()
        self.done = 0
        self.log = open(args.failures, "w", encoding="utf-8") if args.failures else None  # noqa: SIM115 -- open for the whole campaign

    def record(self, index: int, kind: str, detail: str, origin: str) -> None:
        with self.lock:
            self.counts[kind] += 1
            self.done += 1
            if kind in FAILURES:
                signature = f"{kind}: {detail.splitlines()[0] if detail else ''}"
                self.failures[signature].append((index, origin))
                if self.log:
                    self.log.write(
                        json.dumps(
                            {"index": index, "kind": kind, "detail": detail, "origin": origin}
                        )
                        + "\n"
                    )
                    self.log.flush()

    def run_range(self, start: int, stop: int) -> None:
        args = self.args
        while start < stop:
            command = [
                sys.executable,
                __file__,
                "--worker",
                "--seed",
                str(args.seed),
                "--start",
                str(start),
                "--stop",
                str(stop),
                "--timeout",
                str(args.timeout),
            ]
            env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                text=True,
                bufsize=1,
            )
            current = None
            last = time.monotonic()
            while True:
                ready, _, _ = select.select([process.stdout], [], [], 1.0)
                if ready:
                    line = process.stdout.readline()
                    if not line:
                        break
                    last = time.monotonic()
                    if line.startswith("S "):
                        current = int(line.split()[1])
                    elif line.startswith("D "):
                        _, index, payload = line.split(" ", 2)
                        self.record(int(index), *json.loads(payload))
                        current = None
                        start = int(index) + 1
                elif current is not None and time.monotonic() - last > 2 * args.timeout + 20:
                    process.kill()
                    process.wait()
                    self.record(
                        current, "hang", f"worker silent for {2 * args.timeout + 20:g} s", ""
                    )
                    start = current + 1
                    current = None
                    break
            status = process.wait()
            if current is not None:  # it died inside a case
                self.record(current, "crash", f"worker exit status {status}", "")
                start = current + 1

    def run(self) -> None:
        args = self.args
        chunks: queue.Queue[tuple[int, int]] = queue.Queue()
        for a in range(args.first, args.first + args.count, args.chunk):
            chunks.put((a, min(a + args.chunk, args.first + args.count)))

        def loop():
            while True:
                try:
                    a, b = chunks.get_nowait()
                except queue.Empty:
                    return
                self.run_range(a, b)

        threads = [threading.Thread(target=loop, daemon=True) for _ in range(args.jobs)]
        began = time.monotonic()
        for t in threads:
            t.start()
        try:
            self.wait(threads, began)
        except KeyboardInterrupt:  # stopped early: report what ran
            print("interrupted", file=sys.stderr)
        self.report(time.monotonic() - began)

    def wait(self, threads, began) -> None:
        args = self.args
        while any(t.is_alive() for t in threads):
            time.sleep(5)
            if args.progress:
                with self.lock:
                    rate = self.done / max(time.monotonic() - began, 1e-9)
                    print(
                        f"{self.done:,}/{args.count:,} cases, {rate:.1f}/s: {dict(self.counts)}",
                        file=sys.stderr,
                        flush=True,
                    )

    def report(self, seconds: float) -> None:
        total = sum(self.counts.values())
        print(
            f"{total:,} cases (seed {self.args.seed}, from {self.args.first}) in {seconds:.0f} s "
            f"with {self.args.jobs} workers, {self.args.timeout:g} s per case"
        )
        for kind in ("ok", "error", "unpositioned", "usage", "other", "hang", "crash"):
            print(f"  {kind:13} {self.counts.get(kind, 0):8,}")
        print(f"distinct failures: {len(self.failures)}")
        for signature, cases in sorted(self.failures.items(), key=lambda kv: -len(kv[1])):
            shown = ", ".join(f"{i} ({o})" if o else str(i) for i, o in cases[:3])
            print(f"  {len(cases):6,} x {signature}\n           cases: {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=0, help="index of the first case")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--chunk", type=int, default=500, help="cases per worker process")
    parser.add_argument("--failures", help="write failing cases here (JSON lines)")
    parser.add_argument("--progress", action="store_true", help="a progress line every 5 s")
    parser.add_argument("--case", type=int, help="run this one case here and show it")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.seed, args.start, args.stop, args.timeout)
        return
    if args.case is not None:
        from fuzzing import make_case, run_case

        case = make_case(args.seed, args.case)
        print(f"case {args.case} ({case.origin}): args {case.args}")
        for name, data in case.files.items():
            print(f"--- {name}\n{data[:3000].decode('utf-8', 'replace')}")
        print(run_case(case, timeout=args.timeout, index=args.case))
        return
    Campaign(args).run()


if __name__ == "__main__":
    main()
