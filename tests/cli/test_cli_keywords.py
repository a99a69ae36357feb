"""`classify --write-xmp`, the undo command it prints, and `--export-dataset` re-imported with
Hugging Face `datasets` (the real library), all on the demo model and its sample pictures."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

import clipdesk

LABELS = ["red circle", "blue star", "yellow triangle", "green square"]
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DC = "{http://purl.org/dc/elements/1.1/}"
REPO = Path(__file__).resolve().parents[2]


def samples(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in clipdesk.demo_images()[:4]:
        shutil.copy(path, folder / path.name)
    return folder


def subjects(sidecar: Path) -> list[str]:
    return [li.text for node in ET.parse(sidecar).getroot().iter(f"{DC}subject") for li in node.iter(f"{RDF}li")]


def subject_kinds(sidecar: Path) -> list[str]:
    return [box.tag.removeprefix(RDF) for node in ET.parse(sidecar).getroot().iter(f"{DC}subject") for box in node]


def run_printed(command: str) -> subprocess.CompletedProcess:
    """A command line exactly as clipdesk printed it, with `clipdesk` as this checkout's module."""
    argv = shlex.split(command)
    assert argv[0] == "clipdesk"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "clipdesk", *argv[1:]], capture_output=True, text=True,
                          env=env, timeout=120)


def test_write_xmp_then_the_printed_undo(cli, tmp_path):
    folder = samples(tmp_path)
    (folder / "01-red-circle.png.xmp").write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>'
        '<rdf:li>mine</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>', encoding="utf-8")
    before = (folder / "01-red-circle.png.xmp").read_bytes()
    code, out, err = cli("classify", folder, "--model", "demo", "--labels", ",".join(LABELS),
                         "--format", "json", "--write-xmp")
    assert code == 0, err
    rows = json.loads(out)
    truth = {"01-red-circle.png": "red circle", "02-blue-star.png": "blue star",
             "03-yellow-triangle.png": "yellow triangle", "04-green-square.png": "green square"}
    assert {Path(r["path"]).name: r["label"] for r in rows} == truth
    for name, label in truth.items():
        expected = ["mine", label] if name.startswith("01") else [label]
        assert subjects(folder / f"{name}.xmp") == expected
        assert subject_kinds(folder / f"{name}.xmp") == ["Bag"]
    # the one-line sidecar stays one line, and is the old bytes once the inserted pieces are cut out
    pieces = [rb"<rdf:li>red circle</rdf:li>(?=</rdf:Bag></dc:subject>)",
              rb'( xmlns:(lr|clipdesk)="[^"]+"){2}(?=>)',
              rb"(<(lr:hierarchicalSubject|clipdesk:Keywords|clipdesk:Scores)>.*?</\2>){3}(?=</rdf:Description>)"]
    merged = (folder / "01-red-circle.png.xmp").read_bytes()
    for piece in pieces:
        merged, count = re.subn(piece, b"", merged, flags=re.DOTALL)
        assert count == 1, piece
    assert merged == before
    printed = [line.split("Undo: ", 1)[1] for line in err.splitlines() if "Undo: " in line]
    assert printed == ["clipdesk classify --undo-xmp"]
    undo = run_printed(printed[0])
    assert undo.returncode == 0, undo.stderr
    assert "4 file(s) restored" in undo.stderr
    assert (folder / "01-red-circle.png.xmp").read_bytes() == before
    assert sorted(p.name for p in folder.glob("*.xmp")) == ["01-red-circle.png.xmp"]
    again = run_printed(printed[0])
    assert again.returncode == 2 and again.stderr.strip() == "clipdesk: There is no keyword write to undo."


def test_multi_label_writes_every_label_present(cli, tmp_path):
    from training.synthetic import render, sample_scene

    rng = np.random.default_rng(5)
    labels = ["purple triangle", "pink star", "red ring", "blue circle", "green square", "yellow heart"]
    pairs = [tuple(label.split()) for label in labels]
    path = tmp_path / "two.png"
    render(sample_scene(rng, pairs=pairs, n_objects=2), 128).save(path)
    code, out, _ = cli("classify", path, "--model", "demo", "--labels", ",".join(labels),
                       "--multi-label", "--format", "json", "--write-xmp", "--xmp-hierarchy", "")
    assert code == 0
    present = json.loads(out)[0]["labels"]
    assert len(present) >= 1 and subjects(tmp_path / "two.png.xmp") == present


def test_export_dataset_round_trips_through_hugging_face_datasets(cli, tmp_path):
    import datasets

    folder = samples(tmp_path)
    target = tmp_path / "out" / "photos.parquet"
    code, out, err = cli("classify", folder, "--model", "demo", "--labels", ",".join(LABELS),
                         "--format", "json", "--export-dataset", target)
    assert code == 0, err
    rows = {r["path"]: r for r in json.loads(out)}
    loaded = datasets.Dataset.from_parquet(str(target))
    assert loaded.features["label"].names == LABELS
    assert len(loaded) == 4
    vectors = clipdesk.load("demo").embed([Path(p) for p in loaded["path"]])
    for i, record in enumerate(loaded):
        row = rows[record["path"]]
        assert loaded.features["label"].int2str(record["label"]) == row["label"]
        assert np.allclose(record["scores"], [row["scores"][name] for name in LABELS], atol=1e-6)
        assert np.asarray(record["image"]).tolist() == np.asarray(clipdesk_image(record["path"])).tolist()
        assert np.allclose(record["embedding"], vectors[i], atol=1e-5)


def clipdesk_image(path: str):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def test_undo_without_paths_or_journal_and_paths_required(cli, tmp_path):
    code, _, err = cli("classify", "--labels", "a,b")
    assert code == 2 and "Name image files or folders" in err
    code, _, err = cli("classify", "--undo-xmp", tmp_path / "nope.json")
    assert code == 2 and "does not exist" in err
