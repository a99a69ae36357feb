"""XMP keywords written where photo tools read them: sidecars for JPEG, HEIC and DNG, merged into
sidecars that digiKam/darktable already wrote, undone byte for byte.

The keywords are read back with the standard library's XML parser (independent of exiv2, which
writes them) and the other tools' properties are compared value by value through exiv2.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth_raw import write_dng

from clipdesk.core import decoders
from clipdesk.core.jobs import run_job
from clipdesk.core.keywords import (
    KeywordError,
    KeywordOptions,
    sidecar_path,
    undo_keywords,
    write_keywords_job,
)

NS = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "dc": "http://purl.org/dc/elements/1.1/",
      "lr": "http://ns.adobe.com/lightroom/1.0/", "digiKam": "http://www.digikam.org/ns/1.0/",
      "xmp": "http://ns.adobe.com/xap/1.0/", "darktable": "http://darktable.sf.net/"}

# What darktable 4.x writes next to a photo, with a keyword and a digiKam tag added by hand.
DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
   xmp:Rating="4"
   xmpMM:DerivedFrom="IMG_0042.JPG"
   darktable:xmp_version="5"
   darktable:auto_presets_applied="1">
   <dc:subject>
    <rdf:Bag>
     <rdf:li>holiday</rdf:li>
     <rdf:li>cat</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>places|beach</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
   <digiKam:TagsList>
    <rdf:Seq>
     <rdf:li>people/anna</rdf:li>
    </rdf:Seq>
   </digiKam:TagsList>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:operation="exposure" darktable:enabled="1" darktable:num="0"
      darktable:params="0000000000000000cdcccc3e"/>
     <rdf:li darktable:operation="colorin" darktable:enabled="1" darktable:num="1"
      darktable:params="gz48eJxjZBgFo2AU0AQAAAAA"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def items(sidecar: Path, prop: str) -> list[str]:
    """The rdf:li texts of one array property, parsed with ElementTree (not exiv2)."""
    root = ET.parse(sidecar).getroot()
    return [li.text for node in root.iter(f"{{{NS[prop.split(':')[0]]}}}{prop.split(':')[1]}")
            for li in node.iter(f"{{{NS['rdf']}}}li")]


def write(pairs, **options):
    return run_job(write_keywords_job(pairs, KeywordOptions(**options)))


def other_properties(path: Path) -> dict:
    import pyexiv2

    handle = pyexiv2.Image(str(path))
    try:
        data = handle.read_xmp()
    finally:
        handle.close()
    return {k: v for k, v in data.items()
            if not k.startswith("Xmp.clipdesk.") and k not in
            ("Xmp.dc.subject", "Xmp.lr.hierarchicalSubject", "Xmp.digiKam.TagsList")}


def test_sidecars_for_jpeg_heic_and_dng(tmp_path):
    decoders.registry()  # pillow-heif's saver
    jpeg, heic, dng = tmp_path / "IMG_0042.JPG", tmp_path / "p.heic", tmp_path / "r.dng"
    Image.new("RGB", (16, 16), "red").save(jpeg)
    Image.new("RGB", (16, 16), "blue").save(heic, format="HEIF")
    write_dng(dng, np.full((16, 16, 3), 128, np.uint8))
    before = {p: p.read_bytes() for p in (jpeg, heic, dng)}
    pixels = np.asarray(Image.open(jpeg)).tolist()
    record = write([(jpeg, [("cat", 0.91)]), (heic, [("dog", 0.8)]), (dng, [("car", 0.7), ("sky", 0.2)])],
                   embed=True)  # embedding is for JPEG/PNG/WebP only: HEIC and RAW still get sidecars
    assert record.notes == []
    assert jpeg.read_bytes() != before[jpeg]  # embedded, as asked
    assert heic.read_bytes() == before[heic] and dng.read_bytes() == before[dng]
    assert items(tmp_path / "p.heic.xmp", "dc:subject") == ["dog"]
    assert items(tmp_path / "r.dng.xmp", "dc:subject") == ["car", "sky"]
    assert items(tmp_path / "r.dng.xmp", "lr:hierarchicalSubject") == ["clipdesk|car", "clipdesk|sky"]
    assert items(tmp_path / "r.dng.xmp", "digiKam:TagsList") == ["clipdesk/car", "clipdesk/sky"]
    xmp = Image.open(jpeg).info["xmp"]  # Pillow's own APP1 reader: the JPEG carries the packet
    subjects = [li.text for node in ET.fromstring(xmp).iter(f"{{{NS['dc']}}}subject")
                for li in node.iter(f"{{{NS['rdf']}}}li")]
    assert subjects == ["cat"]
    assert np.asarray(Image.open(jpeg)).tolist() == pixels  # metadata only: the pixels are the same


def test_sidecar_naming_keeps_the_extension_case_or_replaces_it(tmp_path):
    image = tmp_path / "IMG_0042.JPG"
    Image.new("RGB", (8, 8)).save(image)
    original = image.read_bytes()
    write([(image, [("cat", 0.9)])])
    assert (tmp_path / "IMG_0042.JPG.xmp").is_file()  # darktable's and digiKam's name
    write([(image, [("cat", 0.9)])], naming="replace")
    assert (tmp_path / "IMG_0042.xmp").is_file()  # Lightroom's name
    assert image.read_bytes() == original  # a sidecar never rewrites the image
    assert sidecar_path(Path("a/b.tar.png"), "replace") == Path("a/b.tar.xmp")


def test_merges_into_a_darktable_sidecar_and_keeps_everything_else(tmp_path):
    image = tmp_path / "IMG_0042.JPG"
    Image.new("RGB", (8, 8)).save(image)
    sidecar = tmp_path / "IMG_0042.JPG.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    untouched = other_properties(sidecar)
    assert untouched["Xmp.xmp.Rating"] == "4" and len(untouched) > 8  # history items are there

    write([(image, [("cat", 0.9), ("sofa", 0.3)])], hierarchy="auto")
    assert items(sidecar, "dc:subject") == ["holiday", "cat", "sofa"]  # the user's "cat" once
    assert items(sidecar, "lr:hierarchicalSubject") == ["places|beach", "auto|cat", "auto|sofa"]
    assert items(sidecar, "digiKam:TagsList") == ["people/anna", "auto/cat", "auto/sofa"]
    assert other_properties(sidecar) == untouched
    ops = [li.get(f"{{{NS['darktable']}}}operation") for li in ET.parse(sidecar).getroot().iter(f"{{{NS['rdf']}}}li")
           if li.get(f"{{{NS['darktable']}}}operation")]
    assert ops == ["exposure", "colorin"]

    # classified again with other labels: clipdesk's keywords are replaced, the user's stay
    write([(image, [("dog", 0.8)])], hierarchy="auto")
    assert items(sidecar, "dc:subject") == ["holiday", "cat", "dog"]
    assert items(sidecar, "lr:hierarchicalSubject") == ["places|beach", "auto|dog"]
    assert other_properties(sidecar) == untouched


def test_undo_restores_the_sidecar_byte_for_byte_and_removes_new_ones(tmp_path):
    old, new = tmp_path / "old.jpg", tmp_path / "new.jpg"
    for path in (old, new):
        Image.new("RGB", (8, 8)).save(path)
    (tmp_path / "old.jpg.xmp").write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    original = (tmp_path / "old.jpg.xmp").read_bytes()
    write([(old, [("cat", 0.9)]), (new, [("dog", 0.9)])])
    assert (tmp_path / "old.jpg.xmp").read_bytes() != original
    result = undo_keywords()
    assert sorted(p.name for p in result.restored) == ["new.jpg.xmp", "old.jpg.xmp"]
    assert (tmp_path / "old.jpg.xmp").read_bytes() == original
    assert not (tmp_path / "new.jpg.xmp").exists()
    with pytest.raises(KeywordError, match="no keyword write to undo"):
        undo_keywords()


def test_undo_keeps_a_sidecar_edited_since(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    for path in (a, b):
        Image.new("RGB", (8, 8)).save(path)
    write([(a, [("cat", 0.9)]), (b, [("dog", 0.9)])])
    edited = (tmp_path / "a.jpg.xmp").read_bytes().replace(b"cat</rdf:li>", b"kitten</rdf:li>")
    (tmp_path / "a.jpg.xmp").write_bytes(edited)
    result = undo_keywords()
    assert result.restored == [tmp_path / "b.jpg.xmp"] and "a.jpg.xmp was changed" in result.kept[0]
    assert (tmp_path / "a.jpg.xmp").read_bytes() == edited  # the user's edit survives


def test_unparseable_sidecar_is_left_alone_and_the_rest_proceeds(tmp_path):
    bad, good = tmp_path / "bad.jpg", tmp_path / "good.jpg"
    for path in (bad, good):
        Image.new("RGB", (8, 8)).save(path)
    junk = b"\x00\xffnot xmp at all<<<"
    (tmp_path / "bad.jpg.xmp").write_bytes(junk)
    record = write([(bad, [("cat", 0.9)]), (good, [("dog", 0.9)])])
    assert (tmp_path / "bad.jpg.xmp").read_bytes() == junk
    assert len(record.notes) == 1 and "bad.jpg.xmp could not be read as XMP" in record.notes[0]
    assert items(tmp_path / "good.jpg.xmp", "dc:subject") == ["dog"]
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_bad_options_are_one_sentence():
    with pytest.raises(KeywordError, match="choose append or replace"):
        KeywordOptions(naming="sideways")
    with pytest.raises(KeywordError, match="may not contain"):
        KeywordOptions(hierarchy="a|b")
