"""clipdesk against rclip 4.0.8: cold index, then text search, whole processes (issue 24).

    python benchmarks/bench_peers_rclip4.py                        # both sets, 3 rounds each
    python benchmarks/bench_peers_rclip4.py --sets 12mp            # 40 × 12-MP JPEGs only
    python benchmarks/bench_peers_rclip4.py --small-rounds 1       # fewer pairs on the 2,000 set (said so)
    python benchmarks/bench_peers_rclip4.py --quick                # 6 big + 200 small photos: a smoke run
    python benchmarks/bench_peers_rclip4.py --write-readme         # also update benchmarks/README.md

rclip 4.0.8 is installed from PyPI into `benchmarks/_data/rclip4-venv` (it needs Python 3.12 or
3.13: found on PATH, under pyenv, or named by $RCLIP_PYTHON; _rclip_setup.find_python). It loads
two ONNX files and a BPE vocabulary from $RCLIP_DATADIR and downloads (huggingface_hub) only what
is missing; the benchmark puts clipdesk's own fp32 export of ViT-B-32-256 with seeded random
weights (`--pretrained none`) there, with placeholders for the four legal files rclip 4 checks
beside them, runs it with HF_HUB_OFFLINE=1, and first asks rclip's own code which files it will
load (_rclip_setup.rclip4_offline_paths): both tools run the very same weights, nothing downloads.

Two photo sets, generated once into benchmarks/_data/core/ (benchmarks/_images.py scenes): 40
synthetic 12-MP JPEGs (≈ 3 MB each, like a phone's) and 2,000 small 640×480 ones. Per set and
round, each tool runs, as fresh processes timed from spawn to exit with peak RSS from wait4():

  rclip 4.0.8        cold: `rclip -f -t 10 QUERY` in the folder with an empty database (it indexes,
                     then searches); search: `rclip -n -f -t 10 QUERY2` (no re-index)
  clipdesk index     cold: `clipdesk index FOLDER --out IDX` into a new folder, then
                     `clipdesk search --index IDX --query QUERY` (two processes: times added, peak
                     the larger); search: `clipdesk search --index IDX --query QUERY2`
  clipdesk search    cold: `clipdesk search FOLDER --query QUERY` with an empty embedding cache
                     (one process, like rclip's); search: the same with QUERY2 (cache warm)
  clipdesk search int8  the same with `--precision int8` (the same weights, dynamically quantised
                     once by clipdesk: its opt-in fast path, not what rclip runs)

clipdesk runs its CPU default (ONNX Runtime fp32) unless the row says int8; the ONNX export and
its int8 quantisation are made once before the rounds, as rclip's model files are already there
(the first-use time is printed). The export's verified hashes (identities.json) are kept between
legs; the embedding cache, the index folder and rclip's database are emptied before every leg. Every clipdesk process goes through benchmarks/_backend_probe.py; a row
whose runs used anything but ONNX Runtime (a torch fallback) is reported as such, its verdict
says NOT MEASURED and the script exits 1. The legs run interleaved (order rotating, one warm-up
round on the 12-MP set), the photos' pages read into the page cache before every leg; ratios are
rclip's / clipdesk's within a round, then median (min–max) (benchmarks/_compare.py).

Goals (issue 24): clipdesk cold ≥ 2× rclip 4 on the 12-MP set with a lower peak RSS; its search
latency ≤ rclip's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Only stdlib-only helpers here: a child's peak RSS starts from this process's (see in_child).
from _backend_probe import backend_used  # noqa: E402
from _compare import Results, Sample, format_ratio, interleave, page_cache  # noqa: E402
from _rclip_setup import (  # noqa: E402
    RCLIP4_REQUIREMENT,
    SetupError,
    in_child,
    photo_folder,
    rclip4_executable,
    rclip4_offline_paths,
    rclip_version,
)

ARCH = "ViT-B-32-256"
DATA = HERE / "_data" / "rclip4"
CORE = HERE / "_data" / "core"
BIG = (CORE / "jpeg_4000x3000_q90", "photo_{:04d}.jpg")  # _images.ensure_photos' names
SMALL_SIZE = (640, 480)
SMALL = (CORE / f"jpeg_{SMALL_SIZE[0]}x{SMALL_SIZE[1]}_q90", "photo_{:05d}.jpg")  # _rclip_setup's
QUERY, QUERY2 = "a dog on a beach", "a red car at night"
RCLIP = "rclip 4.0.8"
LEGS = ("clipdesk index", "clipdesk search", "clipdesk search int8", RCLIP)
# What each clipdesk leg's engine must have run: anything else (a torch fallback) is not reported.
EXPECTED = {"clipdesk index": "onnx", "clipdesk search": "onnx", "clipdesk search int8": "onnx-int8"}
PRECISION = {"clipdesk search int8": ["--precision", "int8"]}
PROBE = HERE / "_backend_probe.py"
README = HERE / "README.md"
MARKERS = ("<!-- bench_peers_rclip4:start -->", "<!-- bench_peers_rclip4:end -->")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def timed(command: list[str], env: dict, cwd: Path | None = None) -> dict:
    """Wall seconds from spawn to exit, CPU seconds and the child's peak RSS (MB), via wait4()."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code != 0:
        raise RuntimeError(f"{' '.join(command[:4])}… exited {code}:\n{stderr[-2000:]}")
    return {"wall": wall, "rss": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime,
            "stdout": stdout, "stderr": stderr}


def file_state(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under `folder`: a download or rewrite of rclip's models shows."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith("db.sqlite3")}


def overlap(first: list[str], second: list[str]) -> float:
    """Share of `first`'s hits (by file name) that `second` also returned."""
    names = {Path(p).name for p in second}
    return sum(Path(p).name in names for p in first) / max(len(first), 1)


class PhotoSet:
    """One folder of photos and the three tools' state for it (database, index, cache)."""

    def __init__(self, name: str, folder: Path, paths: list[Path]) -> None:
        self.name, self.folder, self.paths = name, folder, paths
        self.state = DATA / f"state-{name}"
        self.rclip_data = self.state / "rclip-data"
        self.index = self.state / "clipdesk-index"
        self.cache = self.state / "clipdesk-cache"  # embedding cache; the ONNX exports are linked in
        self.models: dict[str, tuple[int, int]] = {}  # rclip's model files as installed


class Bench:
    def __init__(self, legs: tuple[str, ...]) -> None:
        self.legs = legs
        self.rclip = rclip4_executable(log)
        self.exports = DATA / "clipdesk-cache" / "onnx"  # made once, shared by every set's cache
        self.hits: dict[tuple[str, str], list[str]] = {}  # (set, leg) -> last cold run's top 10
        self.ran: dict[str, set[str]] = {}

    # -- set-up --------------------------------------------------------------------------------
    def prepare(self, photo_sets: list[PhotoSet]) -> dict:
        """The fp32 ONNX export (timed: clipdesk's one-time first use), then rclip's datadir."""
        one = photo_folder(photo_sets[0].paths[:1], "one-photo", DATA)
        first = None
        for precision in ("fp32", "int8"):  # the export, then its int8 quantisation: once each
            if not list(self.exports.glob(f"{ARCH}_none*/{precision}/visual.onnx")):
                log(f"  first use: clipdesk's ONNX {precision} export (once)")
                run = self.clipdesk(["classify", str(one), "--labels", "cat,dog", "--backend", "onnx",
                                     "--precision", precision], DATA / "clipdesk-cache")
                first = first or run
        export = sorted(self.exports.glob(f"{ARCH}_none*/fp32"))[0]
        for photo_set in photo_sets:
            in_child("towers", str(export), str(photo_set.rclip_data), "legal")
            paths = rclip4_offline_paths(self.rclip, photo_set.rclip_data)
            log(f"  rclip 4 loads, offline: {paths['visual']}")
            photo_set.models = file_state(photo_set.rclip_data)
        return {"export": str(export), "first_use": first}

    def env(self, cache: Path) -> dict:
        env = dict(os.environ, CLIPDESK_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1")
        env.pop("CLIPDESK_CONFIG_DIR", None)
        # Bytecode as an installed package has it (pip compiles at install; rclip's venv has it):
        # with PYTHONDONTWRITEBYTECODE set, as on this machine, every leg re-compiled the checkout.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def reset(self, photo_set: PhotoSet) -> None:
        """Empty index, database and embedding cache; keep the exports and rclip's model files."""
        for name in ("db.sqlite3", "db.sqlite3-journal", "db.sqlite3-wal", "db.sqlite3-shm"):
            (photo_set.rclip_data / name).unlink(missing_ok=True)
        shutil.rmtree(photo_set.index, ignore_errors=True)
        shutil.rmtree(photo_set.cache, ignore_errors=True)
        photo_set.cache.mkdir(parents=True)
        (photo_set.cache / "onnx").symlink_to(self.exports, target_is_directory=True)
        # The model's set-up state stays, as rclip's model files do: the export's verified hashes
        # (without this memo every run would re-hash 350 MB of weights, which only a first use does).
        memo = DATA / "clipdesk-cache" / "identities.json"
        if memo.is_file():
            shutil.copyfile(memo, photo_set.cache / "identities.json")

    # -- one process each ------------------------------------------------------------------------
    def clipdesk(self, args: list[str], cache: Path) -> dict:
        """One clipdesk process through the backend probe: run["backend"] is what its engine ran."""
        report = DATA / "backend-probe.json"
        report.unlink(missing_ok=True)
        command = [sys.executable, str(PROBE), str(report), *args, "--model", ARCH, "--pretrained", "none"]
        run = timed(command, self.env(cache))
        run["backend"] = backend_used(json.loads(report.read_text(encoding="utf-8")))
        return run

    def search_hits(self, run: dict, count: int) -> list[str]:
        rows = json.loads(run["stdout"])
        if len(rows) != min(10, count) or any("error" in row for row in rows):
            raise RuntimeError(f"clipdesk search returned {len(rows)} rows: {run['stdout'][:300]}")
        return [row["path"] for row in rows]

    def rclip_run(self, photo_set: PhotoSet, query: str, index: bool) -> dict:
        env = dict(os.environ, RCLIP_DATADIR=str(photo_set.rclip_data), HF_HUB_OFFLINE="1")
        env.pop("PYTHONPATH", None)
        run = timed([str(self.rclip), "-f", "-t", "10", *([] if index else ["-n"]), query], env, photo_set.folder)
        run["hits"] = [line.strip() for line in run["stdout"].splitlines() if line.strip()]
        if len(run["hits"]) != min(10, len(photo_set.paths)):
            raise RuntimeError(f"rclip printed {len(run['hits'])} results: {run['stderr'][-800:]}")
        return run

    # -- legs ------------------------------------------------------------------------------------
    def leg(self, photo_set: PhotoSet, name: str):
        def run() -> Sample:
            self.reset(photo_set)
            if name == RCLIP:
                cold = self.rclip_run(photo_set, QUERY, index=True)
                search = self.rclip_run(photo_set, QUERY2, index=False)
                changed = file_state(photo_set.rclip_data) != photo_set.models
                ran = "rclip: its model files CHANGED (a download?)" if changed else "onnxruntime, our export"
                self.hits[(photo_set.name, name)] = cold["hits"]
                return Sample({"cold": cold["wall"], "cold CPU": cold["cpu"], "cold RSS": cold["rss"],
                               "search": search["wall"], "search RSS": search["rss"]}, ran=ran)
            folder, cache = str(photo_set.folder), photo_set.cache
            if name == "clipdesk index":
                index = self.clipdesk(["index", folder, "--out", str(photo_set.index)], cache)
                first = self.clipdesk(["search", "--index", str(photo_set.index), "--query", QUERY,
                                       "--format", "json"], cache)
                search = self.clipdesk(["search", "--index", str(photo_set.index), "--query", QUERY2,
                                        "--format", "json"], cache)
                runs = (index, first, search)
                cold = {"wall": index["wall"] + first["wall"], "cpu": index["cpu"] + first["cpu"],
                        "rss": max(index["rss"], first["rss"])}
            else:
                extra = PRECISION.get(name, [])
                first = self.clipdesk(["search", folder, "--query", QUERY, "--format", "json", *extra], cache)
                search = self.clipdesk(["search", folder, "--query", QUERY2, "--format", "json", *extra], cache)
                runs, cold = (first, search), first
            self.hits[(photo_set.name, name)] = self.search_hits(first, len(photo_set.paths))
            self.search_hits(search, len(photo_set.paths))
            ran = ", ".join(dict.fromkeys(r["backend"] for r in runs))
            return Sample({"cold": cold["wall"], "cold CPU": cold["cpu"], "cold RSS": cold["rss"],
                           "search": search["wall"], "search RSS": search["rss"]}, ran=ran)
        return run

    def rounds(self, photo_set: PhotoSet, rounds: int, warmup: int) -> Results:
        legs = {name: self.leg(photo_set, name) for name in self.legs}
        warm = lambda: page_cache(photo_set.paths, "warm")  # noqa: E731 - every leg starts alike
        if rounds >= 3:
            return interleave(legs, rounds=rounds, warmup=warmup, log=log, between=warm)
        # Fewer than 3 pairs (a big set on a busy machine): same rotation, and the table says so.
        results = Results({name: [] for name in legs})
        names = list(legs)
        for turn in range(rounds):
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                warm()
                sample = legs[name]()
                log(f"  round {turn + 1}/{rounds}  {name}: " +
                    ", ".join(f"{k} {v:.3g}" for k, v in sample.values.items()) + f"  [{sample.ran}]")
                results.samples[name].append(sample)
        return results


# -- report ------------------------------------------------------------------------------------
def honest(results: Results, name: str) -> bool:
    """A clipdesk row ran only ONNX Runtime; rclip's row left its model files as they were."""
    if name == RCLIP:
        return "CHANGED" not in results.ran(name)
    return results.ran(name) == EXPECTED[name]


def spread(results: Results, name: str, key: str, digits: int = 2) -> str:
    values = results.values(name, key)
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}"


def table(photo_set: PhotoSet, results: Results, bench: Bench) -> str:
    count = len(photo_set.paths)
    lines = [f"| {photo_set.name}: {count} photos, {ARCH} | ran | cold (index + 1st search) | rclip / row, "
             "cold | CPU s (cold) | peak RSS (cold) | search only | rclip / row, search | peak RSS (search) | "
             "top-10 shared with rclip |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in results.samples:
        if not honest(results, name):
            lines.append(f"| ~~{name}~~ | {results.ran(name)} | not reported: a fallback ran |" + " |" * 7)
            continue
        cold, search = results.median(name, "cold"), results.median(name, "search")
        shared = overlap(bench.hits.get((photo_set.name, RCLIP), []), bench.hits.get((photo_set.name, name), []))
        is_base = name == RCLIP
        lines.append(
            f"| {name} | {results.ran(name)} | {cold:.2f} s ({spread(results, name, 'cold')}; "
            f"{count / cold:.1f} img/s) | {'—' if is_base else format_ratio(results.ratio(RCLIP, name, 'cold'))} | "
            f"{results.median(name, 'cold CPU'):.1f} | {results.median(name, 'cold RSS'):.0f} MB "
            f"({spread(results, name, 'cold RSS', 0)}) | "
            f"{search:.2f} s ({spread(results, name, 'search')}) | "
            f"{'—' if is_base else format_ratio(results.ratio(RCLIP, name, 'search'))} | "
            f"{results.median(name, 'search RSS'):.0f} MB | {'—' if is_base else f'{shared:.0%}'} |")
    rounds = min(len(s) for s in results.samples.values())
    lines.append("")
    lines.append(f"{rounds} interleaved round(s); medians (min–max). rclip / row: rclip's time over the row's "
                 "within each round, median (min–max): above 1, clipdesk is faster.")
    return "\n".join(lines)


def verdicts(photo_set: PhotoSet, results: Results, goal_cold: float | None) -> list[str]:
    out = []
    for name in results.samples:
        if name == RCLIP:
            continue
        if not honest(results, name):
            out.append(f"{photo_set.name}, {name}: NOT MEASURED — its runs used {results.ran(name)}, "
                       f"not {EXPECTED[name]}")
            continue
        speed = results.ratio(RCLIP, name, "cold")[0]
        rss = results.median(name, "cold RSS") < results.median(RCLIP, "cold RSS")
        search = results.median(name, "search") <= results.median(RCLIP, "search")
        goal = "" if goal_cold is None else f" (goal ≥ {goal_cold:g}: {'met' if speed >= goal_cold else 'MISSED'})"
        out.append(f"{photo_set.name}, {name}: cold {speed:.2f}× rclip 4's speed{goal}; peak RSS "
                   f"{'below' if rss else 'NOT below'} rclip's; search {'≤' if search else 'SLOWER than'} rclip's")
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_readme(section: str) -> None:
    """Replace the marked rclip 4 block of benchmarks/README.md (others' text untouched)."""
    start, end = MARKERS
    text = README.read_text(encoding="utf-8")
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## rclip 4.0.8 (issue 24)\n\n" + block + "\n"
    tmp = README.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(README)


def photo_sets(names: list[str], big: int, small: int) -> list[PhotoSet]:
    out = []
    for name in names:
        if name == "12mp":
            in_child("photos", str(big))
            paths = [BIG[0] / BIG[1].format(i) for i in range(big)]
            label = "12-MP"
        else:
            in_child("small", str(small), str(SMALL_SIZE[0]), str(SMALL_SIZE[1]))
            paths = [SMALL[0] / SMALL[1].format(i) for i in range(small)]
            label = f"{SMALL_SIZE[0]}×{SMALL_SIZE[1]}"
        out.append(PhotoSet(label, photo_folder(paths, f"photos-{name}", DATA), paths))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="12mp,small", help="comma-separated: 12mp, small")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds on the 12-MP set (>= 3)")
    parser.add_argument("--small-rounds", type=int, default=3,
                        help="rounds on the small set (below 3 on a busy machine: the table says how many)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first on the 12-MP set")
    parser.add_argument("--big", type=int, default=40, help="12-MP photos (default 40)")
    parser.add_argument("--small", type=int, default=2000, help="small photos (default 2,000)")
    parser.add_argument("--legs", default=",".join(LEGS), help=f"comma-separated, of: {', '.join(LEGS)}")
    parser.add_argument("--quick", action="store_true", help="6 big and 200 small photos, 3 rounds, no warm-up")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.big, args.small, args.warmup = 6, 200, 0
    legs = tuple(name.strip() for name in args.legs.split(","))
    if RCLIP not in legs or any(name not in LEGS for name in legs):
        parser.error(f"--legs must include {RCLIP!r} and name only: {', '.join(LEGS)}")
    try:
        bench = Bench(legs)
        sets = photo_sets([s.strip() for s in args.sets.split(",")], args.big, args.small)
        prepared = bench.prepare(sets)
    except (SetupError, subprocess.CalledProcessError) as error:
        log(f"bench_peers_rclip4: cannot set up rclip 4: {error}")
        return 2
    version = rclip_version(bench.rclip)
    log(f"{machine()}; {version}; load average {os.getloadavg()[0]:.1f}")
    import resource

    log(f"  harness peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
        "(the floor of every child's measured peak)")
    parts, ok = [], True
    for photo_set in sets:
        big = photo_set.name == "12-MP"
        rounds = args.rounds if big else args.small_rounds
        load = os.getloadavg()[0]
        start = time.strftime("%H:%M", time.gmtime())
        results = bench.rounds(photo_set, rounds, args.warmup if big else 0)
        end = time.strftime("%H:%M UTC", time.gmtime())
        notes = verdicts(photo_set, results, 2.0 if big else None)
        ok &= all(honest(results, name) for name in results.samples)
        parts += [f"**{photo_set.name} set** ({len(photo_set.paths)} photos), {start}–{end}, load average "
                  f"{load:.1f} → {os.getloadavg()[0]:.1f}, {rounds} round(s)"
                  f"{', 1 warm-up' if big and args.warmup else ''}:", "", table(photo_set, results, bench), "",
                  *[f"- {note}" for note in notes], ""]
    first = prepared["first_use"]
    command = " ".join(["python benchmarks/bench_peers_rclip4.py", *(argv if argv is not None else sys.argv[1:])])
    section = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} by `{command}` on {machine()}; {version} "
        f"({RCLIP4_REQUIREMENT} from PyPI in its own venv), clipdesk ONNX Runtime fp32, the same seeded "
        "random ViT-B-32-256 weights in both (a shared machine: compare ratios, not seconds)."
        + ("" if first is None else f" clipdesk's one-time ONNX export took {first['wall']:.0f} s (not in the table)."),
        "", *parts]).rstrip()
    print(section, flush=True)
    if args.write_readme:
        write_readme(section)
        log(f"updated {README}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
