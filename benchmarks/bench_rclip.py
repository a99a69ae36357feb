"""clipdesk (torch, ONNX Runtime fp32, ONNX Runtime int8) against rclip 3.3, whole processes (issue 6).

    python benchmarks/bench_rclip.py                  # 3 rounds + 1 warm-up, ≈ 10 min once set up
    python benchmarks/bench_rclip.py --quick          # 6 photos, no accuracy check: a smoke run
    python benchmarks/bench_rclip.py --write-readme   # also update benchmarks/README.md

Same folder of 40 synthetic 12-MP JPEGs (benchmarks/_images.py), same seeded random ViT-B-32-256
weights for both tools (clipdesk `--pretrained none`; rclip gets clipdesk's fp32 ONNX export
under $RCLIP_DATADIR, so it never downloads), 10 labels. Each measurement is a fresh process
timed from spawn to exit, with its peak RSS from wait4(); every configuration runs once per
round (the order rotating), after one warm-up round for all of them, so a busy shared machine
slows all of them alike (benchmarks/_compare.py). Medians are shown; each ratio to rclip is taken
within a round, then the median (min–max) over rounds.

Every clipdesk run goes through benchmarks/_backend_probe.py, which records the backend its
engine actually used; the table shows it per row, and a row named ONNX whose runs used torch (a
fallback, or an export that was not there) is not reported as ONNX: its verdict says so and the
script exits 1.

  cold      `clipdesk classify` with an empty embedding cache (the one-time ONNX export already
            done, as rclip's model files are) | `rclip QUERY` with no index (indexes, then searches)
  warm      the same folder again with 10 new labels, embeddings cached | `rclip -n QUERY`
  1 photo   a cold run on a single photo: start-up + first batch (time to first result)
  first use the one-time ONNX export (fp32) or quantisation (int8), in a cold 1-photo run

Targets: cold ≥ 1.5x faster than rclip's cold index, peak RSS below rclip's, warm faster than
rclip's search-only run.
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
sys.path.insert(0, str(HERE.parent))

from _backend_probe import backend_used  # noqa: E402
from _compare import Sample, format_ratio, interleave  # noqa: E402
from _images import DATA as PHOTO_DATA  # noqa: E402
from _images import QUALITY, SIZE  # noqa: E402
from _rclip_setup import (  # noqa: E402
    DATA,
    in_child,
    photo_folder,
    rclip_executable,
    rclip_version,
)

ARCH = "ViT-B-32-256"
COUNT = 40
LABELS = ["cat", "dog", "car", "bicycle", "beach", "mountain", "city street", "forest",
          "a plate of food", "a group of people"]
NEW_LABELS = ["bird", "horse", "boat", "train", "lake", "desert", "night sky", "snow",
              "a bowl of fruit", "a child playing"]
CONFIGS = {  # name -> extra clipdesk options (None: rclip)
    "clipdesk torch": ["--backend", "torch"],
    "clipdesk ONNX fp32": ["--backend", "onnx", "--precision", "fp32"],
    "clipdesk ONNX int8": ["--backend", "onnx", "--precision", "int8"],
    "rclip 3.3": None,
}
EXPECTED = {"clipdesk torch": "torch", "clipdesk ONNX fp32": "onnx", "clipdesk ONNX int8": "onnx-int8"}
RCLIP = "rclip 3.3"
PROBE = HERE / "_backend_probe.py"
README = HERE / "README.md"
MARKERS = {"table": ("<!-- bench_rclip:start -->", "<!-- bench_rclip:end -->"),
           "int8": ("<!-- bench_rclip_int8:start -->", "<!-- bench_rclip_int8:end -->")}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def timed(command: list[str], env: dict, cwd: Path | None = None) -> dict:
    """Wall seconds from spawn to exit and the child's peak RSS (MB), via wait4()."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])}… exited {process.returncode}:\n{stderr[-2000:]}")
    return {"wall": wall, "rss": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime,
            "stdout": stdout, "stderr": stderr}


class Bench:
    def __init__(self, rounds: int, count: int = COUNT) -> None:
        self.rounds, self.count = rounds, count
        self.rclip = rclip_executable(log)
        in_child("photos", str(count))  # see in_child: this process stays small
        pool = PHOTO_DATA / f"jpeg_{SIZE[0]}x{SIZE[1]}_q{QUALITY}"
        photos = [pool / f"photo_{i:04d}.jpg" for i in range(count)]
        self.folder = photo_folder(photos, "photos")
        self.one = photo_folder(photos[:1], "one-photo")
        self.cache = DATA / "clipdesk-cache"  # CLIPDESK_CACHE_DIR: embeddings + ONNX exports
        self.datadir = DATA / "rclip-data"  # RCLIP_DATADIR: models + index
        self.results = None  # _compare.Results once the rounds ran
        self.first_use: dict[str, dict] = {}

    # -- environments -----------------------------------------------------------------------------
    def clipdesk_env(self) -> dict:
        env = dict(os.environ, CLIPDESK_CACHE_DIR=str(self.cache), HF_HUB_OFFLINE="1")
        env.pop("CLIPDESK_CONFIG_DIR", None)
        return env

    def rclip_env(self) -> dict:
        env = dict(os.environ, RCLIP_DATADIR=str(self.datadir), HF_HUB_OFFLINE="1")
        env.pop("PYTHONPATH", None)
        return env

    def reset_clipdesk_cache(self) -> None:
        """Empty the embedding cache; keep the ONNX exports (rclip keeps its model files too)."""
        self.cache.mkdir(parents=True, exist_ok=True)
        for entry in self.cache.iterdir():
            if entry.name != "onnx":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def reset_rclip_index(self) -> None:
        for name in ("db.sqlite3", "db.sqlite3-journal", "db.sqlite3-wal", "db.sqlite3-shm"):
            (self.datadir / name).unlink(missing_ok=True)

    # -- runs ---------------------------------------------------------------------------------------
    def classify(self, options: list[str], folder: Path, labels: list[str]) -> dict:
        """One `clipdesk classify` process, through the backend probe: run["backend"] is what ran."""
        report = DATA / "backend-probe.json"
        report.unlink(missing_ok=True)
        command = [sys.executable, str(PROBE), str(report), "classify", str(folder), "--model", ARCH,
                   "--pretrained", "none", "--labels", ",".join(labels), "--format", "json", *options]
        run = timed(command, self.clipdesk_env())
        rows = json.loads(run["stdout"])
        if len(rows) != len(list(folder.iterdir())) or any("error" in row for row in rows):
            raise RuntimeError(f"clipdesk classified {len(rows)} rows: {run['stdout'][:500]}")
        run["backend"] = backend_used(json.loads(report.read_text(encoding="utf-8")))
        return run

    def rclip_run(self, folder: Path, query: str, index: bool) -> dict:
        command = [str(self.rclip), "-f", "-t", "10", *([] if index else ["-n"]), query]
        run = timed(command, self.rclip_env(), cwd=folder)
        if not run["stdout"].strip():
            raise RuntimeError(f"rclip printed no results: {run['stderr'][-1000:]}")
        return run

    def prepare(self) -> None:
        """First use: the fp32 export and the int8 quantisation, each timed in a cold 1-photo run."""
        onnx = self.cache / "onnx"
        if onnx.exists():
            shutil.rmtree(onnx)
        for name in ("clipdesk ONNX fp32", "clipdesk ONNX int8"):
            self.reset_clipdesk_cache()
            log(f"  first use: {name} (export/quantise)")
            self.first_use[name] = self.classify(CONFIGS[name], self.one, LABELS)
        exports = sorted(onnx.glob(f"{ARCH}_none*/fp32"))
        in_child("towers", str(exports[0]), str(self.datadir))

    def leg(self, name: str, options: list[str] | None):
        """One configuration's runs in a round: 1 photo cold, the folder cold, then warm."""
        def run() -> Sample:
            if options is None:
                self.reset_rclip_index()
                one = self.rclip_run(self.one, "cat", index=True)
                self.reset_rclip_index()
                cold = self.rclip_run(self.folder, "cat", index=True)
                warm = self.rclip_run(self.folder, "bird", index=False)
                ran = "rclip (ONNX Runtime)"
            else:
                self.reset_clipdesk_cache()
                one = self.classify(options, self.one, LABELS)
                self.reset_clipdesk_cache()
                cold = self.classify(options, self.folder, LABELS)
                warm = self.classify(options, self.folder, NEW_LABELS)
                ran = ", ".join(dict.fromkeys(r["backend"] for r in (one, cold, warm)))
            return Sample({"1 photo": one["wall"], "cold": cold["wall"], "cold CPU": cold["cpu"],
                           "cold RSS": cold["rss"], "warm": warm["wall"]}, ran=ran)
        return run

    def run_rounds(self, warmup: int) -> None:
        legs = {name: self.leg(name, options) for name, options in CONFIGS.items()}
        self.results = interleave(legs, rounds=self.rounds, warmup=warmup, log=log)

    def median(self, name: str, phase: str) -> float:
        return self.results.median(name, phase)

    def honest(self, name: str) -> bool:
        """A clipdesk row ran only the backend its name says (an ONNX row never ran torch)."""
        return name not in EXPECTED or self.results.ran(name) == EXPECTED[name]

    # -- report -------------------------------------------------------------------------------------
    def table(self) -> str:
        base_rss = self.median(RCLIP, "cold RSS")
        lines = [
            f"| {self.count} × 12-MP JPEG, {ARCH}, 10 labels | backend used | cold run | speed-up vs rclip cold | "
            "CPU time (cold) | peak RSS (cold) | warm re-run, new labels | vs rclip search-only | "
            "1 photo (start-up + first batch) | first use (one-time) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name in CONFIGS:
            cold, warm = self.median(name, "cold"), self.median(name, "warm")
            first = self.first_use.get(name)
            if not self.honest(name):  # a fallback's times are not this backend's: none shown
                lines.append(f"| ~~{name}~~ | {self.results.ran(name)} | not reported: the runs did not "
                             f"all use {EXPECTED[name]} |" + " |" * 7)
                continue
            shown = name
            lines.append(
                f"| {shown} | {self.results.ran(name)} | {cold:.1f} s ({self.count / cold:.1f} img/s) | "
                f"{'—' if name == RCLIP else format_ratio(self.results.ratio(RCLIP, name, 'cold'))} | "
                f"{self.median(name, 'cold CPU'):.1f} s | "
                f"{self.median(name, 'cold RSS'):.0f} MB | {warm:.2f} s | "
                f"{'—' if name == RCLIP else format_ratio(self.results.ratio(RCLIP, name, 'warm'))} | "
                f"{self.median(name, '1 photo'):.2f} s | "
                f"{'—' if first is None else format(first['wall'], '.1f') + ' s [' + first['backend'] + ']'} |"
            )
        lines.append("")
        lines.append(f"rclip cold peak RSS {base_rss:.0f} MB; rclip's warm column is `rclip -n` (search only). "
                     "Speed-ups: rclip's time / the row's, per round, median (min–max). First use: the fp32 "
                     "row exports from torch (torch start-up included); the int8 row then quantises that "
                     "export. 'backend used': what clipdesk's engine ran (benchmarks/_backend_probe.py).")
        return "\n".join(lines)

    def verdicts(self) -> list[str]:
        out = []
        for name in CONFIGS:
            if name in (RCLIP, "clipdesk torch"):
                continue
            if not self.honest(name):
                out.append(f"{name}: NOT MEASURED — its runs used {self.results.ran(name)}, not "
                           f"{EXPECTED[name]}; a torch run is not reported as ONNX")
                continue
            speed = self.results.ratio(RCLIP, name, "cold")[0]
            rss = self.median(name, "cold RSS") < self.median(RCLIP, "cold RSS")
            warm = self.median(name, "warm") < self.median(RCLIP, "warm")
            out.append(f"{name}: cold {speed:.2f}× rclip (target ≥ 1.5: {'met' if speed >= 1.5 else 'MISSED'}), "
                       f"peak RSS {'below' if rss else 'NOT below'} rclip's, "
                       f"warm {'faster' if warm else 'NOT faster'} than rclip search-only")
        return out


def int8_accuracy(count: int = 600, size: int = 160) -> list[dict]:
    """Top-1 of the built-in demo model (64 colour-shape classes) on `count` fresh synthetic
    one-shape images: torch, ONNX fp32 and ONNX int8, in this process, without the cache."""
    import numpy as np

    from clipdesk.core.demo import demo_metadata
    from clipdesk.core.engine import open_engine_job
    from clipdesk.core.jobs import run_job
    from training import synthetic

    os.environ["CLIPDESK_CACHE_DIR"] = str(DATA / "clipdesk-cache")
    folder = DATA / f"demo-eval-{count}-{size}"
    rng = np.random.default_rng(2026)  # a seed the demo's training never used
    scenes = [synthetic.sample_scene(rng, synthetic.ALL_PAIRS, n_objects=1) for _ in range(count)]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, scene in enumerate(scenes):
        path = folder / f"{index:04d}.png"
        if not path.is_file():
            synthetic.render(scene, size).save(path)
        paths.append(path)
    names = list(demo_metadata()["class_names"])
    truth = np.array([names.index(synthetic.label_prompt(*scene.pairs[0])) for scene in scenes])
    rows = []
    for backend, precision in (("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8")):
        engine = run_job(open_engine_job("demo", "demo", "cpu", backend, precision, use_cache=False))
        label_set = engine.label_set(names, demo_metadata().get("templates", "none"))
        start = time.perf_counter()
        embedded = run_job(engine.embed_job(paths, batch_size=64))
        seconds = time.perf_counter() - start
        top1 = float(np.mean(engine.score(embedded.features, label_set).probs.argmax(axis=1) == truth))
        rows.append({"backend": f"{backend} {precision}", "encoder": engine.encoder.name,
                     "top1": top1, "img_s": count / seconds})
        log(f"    demo {backend} {precision}: top-1 {top1:.1%}, {count / seconds:.0f} img/s")
    return rows


def accuracy_table(rows: list[dict]) -> str:
    base = rows[1]["top1"]
    lines = ["| built-in demo model, 600 synthetic images, 64 labels | top-1 | vs ONNX fp32 |", "|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['backend']} | {row['top1']:.1%} | {100 * (row['top1'] - base):+.1f} points |")
    return "\n".join(lines)


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


def write_readme(section: str, part: str = "table") -> None:
    """Replace one marked block of the "ONNX Runtime and rclip" section (others' text untouched)."""
    start, end = MARKERS[part]
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    elif part == "table" or MARKERS["table"][1] not in text:
        text = text.rstrip("\n") + "\n\n## ONNX Runtime and rclip\n\n" + block + "\n"
    else:  # right after the speed table
        head, rest = text.split(MARKERS["table"][1], 1)
        text = head + MARKERS["table"][1] + "\n\n" + block + rest
    tmp = README.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(README)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first, for every configuration")
    parser.add_argument("--photos", type=int, default=None, help=f"photos in the folder (default {COUNT}, quick 6)")
    parser.add_argument("--quick", action="store_true", help="6 photos, no accuracy check: a smoke run")
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true", help="skip the int8 top-1 check on the demo model")
    parser.add_argument("--accuracy-only", action="store_true", help="only the int8 top-1 check")
    args = parser.parse_args(argv)
    if args.accuracy_only:
        return accuracy_report(args.write_readme)

    count = args.photos or (6 if args.quick else COUNT)
    bench = Bench(args.rounds, count)
    log(f"{machine()}; {rclip_version(bench.rclip)}; load average {os.getloadavg()[0]:.1f}")
    bench.prepare()
    import resource

    log(f"  harness peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
        "(the floor of every child's measured peak)")
    load_before = os.getloadavg()
    bench.run_rounds(args.warmup)
    load_after = os.getloadavg()
    table = bench.table()
    notes = bench.verdicts()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = "\n".join([
        f"Measured {stamp} by `python benchmarks/bench_rclip.py --rounds {args.rounds} --photos {count}` "
        f"on {machine()}; "
        f"{rclip_version(bench.rclip)} from PyPI in its own venv. Load average "
        f"{load_before[0]:.1f} → {load_after[0]:.1f} (a shared machine: compare ratios, not seconds). "
        f"Medians of {args.rounds} interleaved rounds after {args.warmup} warm-up round(s).",
        "",
        table,
        "",
        *[f"- {note}" for note in notes],
    ])
    print(section, flush=True)
    if args.write_readme:
        write_readme(section)
        log(f"updated {README}")
    honest = all(bench.honest(name) for name in CONFIGS)
    if args.skip_accuracy or args.quick:
        return 0 if honest else 1
    return max(accuracy_report(args.write_readme), 0 if honest else 1)  # in this process, after every RSS measurement


def accuracy_report(write: bool) -> int:
    try:
        rows = int8_accuracy()
    except Exception as error:  # noqa: BLE001 - e.g. the demo model is being rebuilt
        log(f"int8 accuracy not measured: {str(error).splitlines()[0][:300]}")
        return 1
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    drop = 100 * (rows[1]["top1"] - rows[2]["top1"])
    section = "\n".join([
        f"int8 accuracy cost (dynamic quantisation of the MatMul weights), measured {stamp} by "
        "`python benchmarks/bench_rclip.py --accuracy-only`:", "", accuracy_table(rows), "",
        f"- int8 top-1 drop vs fp32: {drop:.1f} points (target ≤ 1: {'met' if drop <= 1 else 'MISSED'}).",
    ])
    print(section)
    if write:
        write_readme(section, "int8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
