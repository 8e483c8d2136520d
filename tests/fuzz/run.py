"""Run opendms's fuzz targets (tests/fuzz/targets.py), each in its own process.

    python tests/fuzz/run.py [TARGET ...] [--seconds N] [--seed S] [--out DIR]

With atheris installed (the ``dev`` extra) each target is fuzzed coverage-guided by
libFuzzer for N seconds, starting from the committed seeds in
``tests/fuzz/corpus/<target>/`` (new interesting inputs go to a scratch corpus, not
into the repository); without it, a plain random mutator of the seeds runs instead.
Each input is bounded in time (``-timeout``) and the process in memory
(``-rss_limit_mb``): a hang or a memory blow-up is a failure like an exception.
A failing input is kept in ``--out`` (``crash-*``, ``timeout-*``, ``oom-*``) and its
path printed; make it a regression test in tests/unit/test_fuzz_regressions.py.
Exit status: 0 when every target ran clean, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PER_INPUT_SECONDS = 10  # one input running longer is a hang
RSS_LIMIT_MB = 2048
MAX_LEN = {"binlog": 16384, "pgoutput": 8192}  # bytes per input (default 4096)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if args.child:
        return _child(args.child, args.seconds, args.seed, Path(args.out))
    from tests.fuzz.targets import TARGETS

    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        print(f"unknown target {unknown[0]!r}; targets: {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="opendms-fuzz-out-"))
    failed = [n for n in names if not run_target(n, args.seconds, args.seed, out)]
    print(f"fuzzed {len(names)} target(s) for {args.seconds}s each; failing: {failed or 'none'}")
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="targets to run (default: all)")
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time per target")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0: a new one)")
    parser.add_argument("--out", default="", help="folder for failing inputs")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    return parser


def run_target(name: str, seconds: int, seed: int, out: Path) -> bool:
    """Fuzz one target in a child process; True when it ran clean."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name]
    command += ["--seconds", str(seconds), "--seed", str(seed), "--out", str(folder)]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120
        )
    except subprocess.TimeoutExpired:
        print(f"{name}: the fuzzing process did not stop in time", file=sys.stderr)
        return False
    found = sorted(p for p in folder.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    took = time.monotonic() - started
    if done.returncode == 0 and not found:
        print(f"{name}: clean ({took:.0f}s; {_summary(done.stderr)})")
        return True
    log = done.stdout + done.stderr  # atheris prints the Python traceback on stdout
    (folder / "log.txt").write_text(log)
    at = log.find("Uncaught Python exception")
    shown = log[at : at + 6000] if at >= 0 else log[-6000:]
    print(
        f"{name}: FAILED (exit {done.returncode}; log {folder}/log.txt)\n{shown}", file=sys.stderr
    )
    for path in found:
        print(f"{name}: failing input {path}: {path.read_bytes()[:400]!r}", file=sys.stderr)
    return False


def _summary(log: str) -> str:
    """The last libFuzzer status line (runs, coverage), or the fallback's."""
    lines = [x for x in log.splitlines() if " cov: " in x or x.startswith("random")]
    return lines[-1].strip() if lines else "no status"


def _child(name: str, seconds: int, seed: int, out: Path) -> int:
    try:
        import atheris
    except ImportError:
        return _random_fuzz(name, seconds, seed, out)
    with atheris.instrument_imports(include=["opendms", "yaml"]):
        targets = importlib.import_module("tests.fuzz.targets")
        for module in targets.MODULES[name]:
            importlib.import_module(module)
    scratch = Path(tempfile.mkdtemp(prefix=f"opendms-fuzz-{name}-"))
    flags = [
        f"-max_total_time={seconds}",
        f"-timeout={PER_INPUT_SECONDS}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-max_len={MAX_LEN.get(name, 4096)}",
        f"-artifact_prefix={out}/",
        "-print_final_stats=1",
    ]
    if seed:
        flags.append(f"-seed={seed}")
    atheris.Setup(
        [sys.argv[0], *flags, str(scratch), str(targets.CORPUS / name)],
        _guard(targets.TARGETS[name]),
    )
    try:
        atheris.Fuzz()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _guard(target: Callable[[bytes], object]) -> Callable[[bytes], None]:
    """``target`` for libFuzzer: a Python exception escaping it is the crash."""

    def run(data: bytes) -> None:
        target(data)

    return run


# -- without atheris: random mutations of the seeds ---------------------------------


def _random_fuzz(name: str, seconds: int, seed: int, out: Path) -> int:
    targets = importlib.import_module("tests.fuzz.targets")
    target = targets.TARGETS[name]
    rng = random.Random(seed or None)
    pool = targets.seeds(name) or [b""]
    limit = MAX_LEN.get(name, 4096)
    resource.setrlimit(resource.RLIMIT_CPU, (seconds + PER_INPUT_SECONDS * 3,) * 2)
    deadline, runs = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        data = _mutate(rng, rng.choice(pool), pool)[:limit]
        started = time.monotonic()
        try:
            target(data)
        except Exception:
            (out / f"crash-random-{runs}").write_bytes(data)
            traceback.print_exc()
            return 1
        if time.monotonic() - started > PER_INPUT_SECONDS:
            (out / f"timeout-random-{runs}").write_bytes(data)
            return 1
        if resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > RSS_LIMIT_MB * 1024:
            (out / f"oom-random-{runs}").write_bytes(data)
            return 1
        runs += 1
    print(f"random mutator: {runs} runs", file=sys.stderr)
    return 0


def _mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.randrange(5)
        at = rng.randint(0, len(buf))
        if choice == 0 and buf:
            buf[min(at, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif choice == 1:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 2:
            del buf[at : at + rng.randint(1, 16)]
        elif choice == 3 and buf:
            buf[min(at, len(buf) - 1)] = rng.choice((0, 0xFF, 0x7F, 0x80, 0xFB, 0xFC, 0xFD))
        else:
            other = rng.choice(pool)
            buf[at:at] = other[: rng.randint(0, len(other))]
    return bytes(buf)


if __name__ == "__main__":
    sys.exit(main())
