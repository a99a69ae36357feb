"""First use of a model: one-time work (the ONNX export) must never block the first result (issue 9 §2).

    python benchmarks/bench_firstuse.py [--photos 20] [--vit] [--skip-gui]

Ratios printed in one run, each against the torch path measured in the same run:
- CLI: the first-ever `classify` of a never-exported model (backend auto: torch now, export in a
  background process) against `--backend torch` on the same photos — target ≤ 1.2×; and a later run
  (export cached, ONNX Runtime) against torch.
- GUI: window shown → first results on a never-exported model against the torch backend — target
  ≤ 1.1×; the longest event-loop stall from the window appearing through the first results, on
  first use and on a later start (export cached) — target < 100 ms.

Every run gets fresh cache/config folders; `--no-cache` keeps embeddings out of the comparison.
Models: the built-in demo (default) or, with `--vit`, ViT-B-32 with seeded random weights saved to
a temporary safetensors file (the real size: a 350 MB export), so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

LABELS = "a cat,a dog,a car,a tree,a house,red circle,blue star"

GUI = r"""
import json, sys, time
arch, pretrained, backend, folder = sys.argv[1:5]
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
from clipdesk.qt.main_window import MainWindow, ModelChoice
import gc
worst, last, first, cpu = [0.0], [None], [None], [0.0, 0.0]
def tick():
    now, used = time.perf_counter(), time.process_time()
    if last[0] is not None and now - last[0] > worst[0]:
        worst[0], cpu[1] = now - last[0], used - cpu[0]  # the process's CPU time during the worst stall
    last[0], cpu[0] = now, used
collections = []  # full collections walk every object holding the GIL: (ms, objects collected)
def collected(phase, info, started=[0.0]):
    if phase == "start":
        started[0] = time.perf_counter()
    elif info["generation"] == 2:
        collections.append(time.perf_counter() - started[0])
gc.callbacks.append(collected)
meter = QTimer(); meter.setInterval(5); meter.timeout.connect(tick)
window = MainWindow(ModelChoice(arch, pretrained, "cpu", backend))
window.session.set_labels([l for l in sys.argv[5].split(",")])
def landed():
    if first[0] is None and any(item.probs is not None for item in window.session.items):
        first[0] = time.perf_counter() - shown[0]
        tick()
        meter.stop()  # the stall window ends at the first results (not at shutdown)
        QTimer.singleShot(50, app.quit)
window.results_updated.connect(landed)
window.show()
shown = [time.perf_counter()]
meter.start()
window.add_paths([folder])
QTimer.singleShot(600_000, app.quit)
app.exec()
gc.callbacks.remove(collected)
print(json.dumps({"first": first[0], "stall": worst[0], "stall_cpu": cpu[1], "backend": window.model_info.get("backend"),
                  "full_gc": len(collections), "full_gc_max": max(collections, default=0.0)}))
window.close()
"""


def fresh_env(root: Path, background: bool = True) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"), HF_HUB_OFFLINE="1")
    for name in ("CACHE", "CONFIG", "DATA"):
        env[f"CLIPDESK_{name}_DIR"] = str(root / name.lower())
    env["CLIPDESK_BACKGROUND_EXPORT"] = "1" if background else "0"
    return env


def cli_run(model: list[str], folder: Path, backend: str, env: dict) -> tuple[float, str]:
    command = [sys.executable, "-m", "clipdesk.cli", "classify", str(folder), *model, "--backend", backend,
               "--labels", LABELS, "--format", "json", "--no-cache", "--device", "cpu"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"classify failed: {done.stderr[-2000:]}")
    return elapsed, done.stderr


def gui_run(arch: str, pretrained: str, backend: str, folder: Path, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", GUI, arch, pretrained, backend, str(folder), LABELS],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"GUI run failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_for_export(env: dict, timeout: float = 900) -> float:
    """Until the background export is in place (its lock gone, a verified meta.json there)."""
    root = Path(env["CLIPDESK_CACHE_DIR"]) / "onnx"
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        done = list(root.glob("*/fp32/meta.json"))
        locked = list(root.glob("*/.export.lock"))
        if done and not locked:
            return time.perf_counter() - start
        if list(root.glob("*/failed.json")):
            raise SystemExit(f"the background export failed: {next(root.glob('*/failed.json')).read_text()}")
        time.sleep(0.5)
    raise SystemExit("the background export did not finish in time")


def copy_export(src: dict, dst: dict) -> None:
    """A later start: the first start's cache folder (export, memos), without its embeddings."""
    import shutil

    shutil.copytree(src["CLIPDESK_CACHE_DIR"], dst["CLIPDESK_CACHE_DIR"], dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("embeddings*"))


def model_args(vit: bool, tmp: Path) -> tuple[str, str]:
    if not vit:
        return "demo", "demo"
    from safetensors.torch import save_file

    from clipdesk.core.models import load_model

    path = tmp / "vit-b-32-random.safetensors"
    loaded = load_model("ViT-B-32", "none", "cpu")
    save_file({k: v.contiguous() for k, v in loaded.model.state_dict().items()}, str(path))
    return "ViT-B-32", str(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=20, help="12-MP JPEGs classified per run")
    parser.add_argument("--vit", action="store_true", help="ViT-B-32 (random weights) instead of the demo model")
    parser.add_argument("--skip-gui", action="store_true")
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args(argv)
    from _images import ensure_photos

    tmp = Path(tempfile.mkdtemp(prefix="bench-firstuse-"))
    photos = ensure_photos(args.photos, log=lambda *a: None)
    folder = tmp / "photos"
    folder.mkdir()
    for i, photo in enumerate(photos):
        (folder / f"p{i:03d}.jpg").symlink_to(photo)
    arch, pretrained = model_args(args.vit, tmp)
    model = ["--model", arch, "--pretrained", pretrained]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"model {arch} {Path(pretrained).name}, {len(photos)} 12-MP photos, {os.cpu_count()} CPUs, "
          f"load average {load:.1f} (stalls on a loaded machine include the scheduler's)")

    try:
        if not args.skip_cli:
            cli_ratios(model, folder, tmp)
        if not args.skip_gui:
            gui_ratios(arch, pretrained, folder, tmp)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)  # each run's caches and exports (a ViT's: 350 MB)
    return 0


def cli_ratios(model: list[str], folder: Path, tmp: Path) -> None:
    torch_env = fresh_env(tmp / "cli-torch", background=False)
    t_torch, _ = cli_run(model, folder, "torch", torch_env)
    first_env = fresh_env(tmp / "cli-first")
    t_first, stderr = cli_run(model, folder, "auto", first_env)
    said = [line for line in stderr.splitlines() if "background" in line]
    waited = wait_for_export(first_env)
    t_later, _ = cli_run(model, folder, "auto", first_env)
    ratio = t_first / t_torch
    print(f"CLI torch-only run:          {t_torch:6.2f} s")
    print(f"CLI first-ever run (auto):   {t_first:6.2f} s  ratio {ratio:.2f}× — target ≤ 1.2×: "
          f"{'OK' if ratio <= 1.2 else 'MISSED'}   (said: {said[0] if said else 'nothing!'})")
    print(f"   background export done {waited:.1f} s after that run ended")
    print(f"CLI later run (ONNX cached): {t_later:6.2f} s  ratio {t_later / t_torch:.2f}×")


def gui_ratios(arch: str, pretrained: str, folder: Path, tmp: Path) -> None:
    gui_torch = gui_run(arch, pretrained, "torch", folder, fresh_env(tmp / "gui-torch", background=False))
    gui_env = fresh_env(tmp / "gui-first")
    gui_first = gui_run(arch, pretrained, "auto", folder, gui_env)
    wait_for_export(gui_env)
    later_env = fresh_env(tmp / "gui-later")
    copy_export(gui_env, later_env)  # a later start: export cached, embeddings not
    gui_later = gui_run(arch, pretrained, "auto", folder, later_env)
    ratio = gui_first["first"] / gui_torch["first"]
    print(f"GUI first results, torch:        {gui_torch['first']:6.2f} s  (longest stall "
          f"{gui_torch['stall'] * 1000:.0f} ms)")
    print(f"GUI first results, first use:    {gui_first['first']:6.2f} s  ratio {ratio:.2f}× — target ≤ 1.1×: "
          f"{'OK' if ratio <= 1.1 else 'MISSED'}  [{gui_first['backend']}]")
    for name, run in (("first use", gui_first), ("later start", gui_later)):
        stall = run["stall"] * 1000
        print(f"GUI longest event-loop stall, {name:<11}: {stall:5.0f} ms — target < 100 ms: "
              f"{'OK' if stall < 100 else 'MISSED'}  [{run['backend']}]")
        # CPU-independent evidence: the process's CPU time during that stall (≈ the stall: work
        # holding the GIL; ≈ 0: the scheduler or the disk), and the full GC passes meanwhile.
        print(f"   process CPU during it {run['stall_cpu'] * 1000:.0f} ms; full GC passes {run['full_gc']} "
              f"(longest {run['full_gc_max'] * 1000:.0f} ms)")


if __name__ == "__main__":
    sys.exit(main())
