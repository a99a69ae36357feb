"""XMP keywords written where photo tools read them: sidecars for JPEG, HEIC and DNG, merged into
sidecars that digiKam/darktable already wrote, undone byte for byte.

clipdesk splices sidecars with expat; the results are read back by readers that share no code
with it: the standard library's ElementTree (list kinds and order), exiv2 (pyexiv2: every value,
the other tools' included) and, where installed, exiftool (Perl, its own XMP parser). "Nothing
else changed" is checked on the bytes: the written file with the expected inserted pieces cut
out must be the original file exactly.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
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

# A darktable sidecar with keywords and a digiKam tag added by hand (a TagsList Seq among them).
HAND_EDITED_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
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


# What digiKam 8 writes (through exiv2, here in the element form of the XMP Toolkit): ratings,
# labels, a title, its own TagsList (an rdf:Seq) and keywords in rdf:Bags.
DIGIKAM_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:MicrosoftPhoto="http://ns.microsoft.com/photo/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/">
   <xmp:Rating>3</xmp:Rating>
   <MicrosoftPhoto:Rating>50</MicrosoftPhoto:Rating>
   <digiKam:ColorLabel>2</digiKam:ColorLabel>
   <digiKam:PickLabel>3</digiKam:PickLabel>
   <digiKam:TagsList>
    <rdf:Seq>
     <rdf:li>People/Anna</rdf:li>
     <rdf:li>Places/Beach &amp; Dunes</rdf:li>
    </rdf:Seq>
   </digiKam:TagsList>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>Anna</rdf:li>
     <rdf:li>Beach &amp; Dunes</rdf:li>
     <rdf:li>cat</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>People|Anna</rdf:li>
     <rdf:li>Places|Beach &amp; Dunes</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
   <dc:title>
    <rdf:Alt>
     <rdf:li xml:lang="x-default">Anna at the beach</rdf:li>
    </rdf:Alt>
   </dc:title>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""

# What darktable 4.x writes: every simple property an attribute of rdf:Description, the edit
# history an rdf:Seq of items that are all attributes, no keywords yet.
DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:darktable="http://darktable.sf.net/"
   exif:DateTimeOriginal="2024:05:01 10:00:00"
   xmp:Rating="1"
   xmpMM:DerivedFrom="IMG_0042.JPG"
   darktable:import_timestamp="63850000000000000"
   darktable:change_timestamp="63850000100000000"
   darktable:export_timestamp="-1"
   darktable:xmp_version="5"
   darktable:raw_params="0"
   darktable:auto_presets_applied="1"
   darktable:history_end="2"
   darktable:iop_order_version="4">
   <darktable:masks_history>
    <rdf:Seq/>
   </darktable:masks_history>
   <darktable:history>
    <rdf:Seq>
     <rdf:li
      darktable:num="0"
      darktable:operation="exposure"
      darktable:enabled="1"
      darktable:modversion="6"
      darktable:params="0000000000000000cdcccc3e00000000"
      darktable:multi_name=""
      darktable:multi_priority="0"
      darktable:blendop_version="13"
      darktable:blendop_params="gz11eJxjYGBgkGAAgRNODGiAEV0AJ2iwh+AHbnLsbAXDSIJjDwAA"/>
     <rdf:li
      darktable:num="1"
      darktable:operation="colorin"
      darktable:enabled="1"
      darktable:modversion="7"
      darktable:params="gz48eJxjZBgFo2AU0AQAAAAA"
      darktable:multi_name=""
      darktable:multi_priority="0"
      darktable:blendop_version="13"
      darktable:blendop_params="gz11eJxjYGBgkGAAgRNODGiAEV0AJ2iwh+AHbnLsbAXDSIJjDwAA"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def _tag(prop: str) -> str:
    prefix, name = prop.split(":")
    return f"{{{NS[prefix]}}}{name}"


def items(sidecar: Path, prop: str) -> list[str]:
    """The rdf:li texts of one array property, parsed with ElementTree (not exiv2)."""
    root = ET.parse(sidecar).getroot()
    return [li.text for node in root.iter(_tag(prop)) for li in node.iter(f"{{{NS['rdf']}}}li")]


def kinds(source, prop: str) -> list[str]:
    """The container kind(s) of one array property ("Bag", "Seq"), read with ElementTree."""
    root = ET.parse(source).getroot() if isinstance(source, Path) else ET.fromstring(source)
    return [child.tag.split("}")[1] for node in root.iter(_tag(prop)) for child in node]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cut(text: bytes, *patterns: bytes) -> bytes:
    """`text` with the pieces clipdesk is expected to have inserted cut out: each pattern (a
    regular expression over bytes) must match exactly once."""
    for pattern in patterns:
        found = re.findall(pattern, text, flags=re.DOTALL)
        assert len(found) == 1, (pattern, found)
        text = re.sub(pattern, b"", text, count=1, flags=re.DOTALL)
    return text


OUR_ELEMENTS = rb"(\r?\n *<(dc:subject|lr:hierarchicalSubject|clipdesk:Keywords|clipdesk:Scores)>.*?</\2>)+"
CLIPDESK_ELEMENTS = rb"(\r?\n *<(clipdesk:Keywords|clipdesk:Scores)>.*?</\2>){2}"


def write(pairs, **options):
    return run_job(write_keywords_job(pairs, KeywordOptions(**options)))


def exiv2_read(path: Path) -> dict:
    import pyexiv2

    handle = pyexiv2.Image(str(path))
    try:
        return handle.read_xmp()
    finally:
        handle.close()


def other_properties(path: Path) -> dict:
    return {k: v for k, v in exiv2_read(path).items()
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
    # a new sidecar holds no digiKam TagsList: digiKam reads lr:hierarchicalSubject when it has none
    assert items(tmp_path / "r.dng.xmp", "digiKam:TagsList") == []
    for sidecar in (tmp_path / "p.heic.xmp", tmp_path / "r.dng.xmp"):
        assert kinds(sidecar, "dc:subject") == ["Bag"] and kinds(sidecar, "lr:hierarchicalSubject") == ["Bag"]
    assert exiv2_read(tmp_path / "r.dng.xmp")["Xmp.dc.subject"] == ["car", "sky"]
    xmp = Image.open(jpeg).info["xmp"]  # Pillow's own APP1 reader: the JPEG carries the packet
    subjects = [li.text for node in ET.fromstring(xmp).iter(f"{{{NS['dc']}}}subject")
                for li in node.iter(f"{{{NS['rdf']}}}li")]
    assert subjects == ["cat"]
    # embedded through exiv2, whose per-property API writes every list as a Seq: still a Bag
    assert kinds(xmp, "dc:subject") == ["Bag"] and kinds(xmp, "lr:hierarchicalSubject") == ["Bag"]
    assert np.asarray(Image.open(jpeg)).tolist() == pixels  # metadata only: the pixels are the same


def test_embedding_merges_into_the_images_own_packet(tmp_path):
    import pyexiv2

    image = tmp_path / "a.webp"
    Image.new("RGB", (8, 8), "green").save(image)
    handle = pyexiv2.Image(str(image))  # a packet another tool embedded: a rating and a keyword
    handle.modify_raw_xmp(HAND_EDITED_SIDECAR.split("\n", 1)[1])
    handle.close()
    digest = sha256(image)
    record = write([(image, [("cat", 0.9), ("lamp", 0.4)])], embed=True)
    assert record.notes == [] and not (tmp_path / "a.webp.xmp").exists()
    xmp = Image.open(image).info["xmp"]  # Pillow's own WebP reader
    assert kinds(xmp, "dc:subject") == ["Bag"] and kinds(xmp, "digiKam:TagsList") == ["Seq"]
    root = ET.fromstring(xmp)
    assert [li.text for li in root.iter(f"{{{NS['rdf']}}}li") if li.text and "|" in li.text] == [
        "places|beach", "clipdesk|cat", "clipdesk|lamp"]
    data = exiv2_read(image)
    assert data["Xmp.dc.subject"] == ["holiday", "cat", "lamp"] and data["Xmp.xmp.Rating"] == "4"
    assert data["Xmp.darktable.history[2]/darktable:operation"] == "colorin"
    undo_keywords()
    assert sha256(image) == digest


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
    sidecar.write_text(HAND_EDITED_SIDECAR, encoding="utf-8")
    untouched = other_properties(sidecar)
    assert untouched["Xmp.xmp.Rating"] == "4" and len(untouched) > 8  # history items are there

    original = sidecar.read_bytes()
    write([(image, [("cat", 0.9), ("sofa", 0.3)])], hierarchy="auto")
    assert cut(sidecar.read_bytes(), CLIPDESK_ELEMENTS,
               rb"\n     <rdf:li>sofa</rdf:li>",
               rb"\n     <rdf:li>auto\|cat</rdf:li>\n     <rdf:li>auto\|sofa</rdf:li>",
               rb"\n     <rdf:li>auto/cat</rdf:li>\n     <rdf:li>auto/sofa</rdf:li>",
               rb'\n    xmlns:clipdesk="[^"]+"') == original
    assert kinds(sidecar, "digiKam:TagsList") == ["Seq"]  # an existing list keeps its kind
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


def test_digikam_sidecar_changes_only_by_the_inserted_keywords_and_undo_restores_it(tmp_path):
    image = tmp_path / "IMG_0042.JPG"
    Image.new("RGB", (8, 8)).save(image)
    sidecar = tmp_path / "IMG_0042.JPG.xmp"
    sidecar.write_text(DIGIKAM_SIDECAR, encoding="utf-8")
    original, digest = sidecar.read_bytes(), sha256(sidecar)
    untouched = other_properties(sidecar)
    assert untouched["Xmp.xmp.Rating"] == "3" and untouched["Xmp.digiKam.ColorLabel"] == "2"

    record = write([(image, [("cat", 0.8), ("dog", 0.15)])])
    assert record.notes == []
    written = sidecar.read_bytes()
    # every byte of digiKam's file is still there, in order: only these pieces were inserted
    assert cut(written,
               rb"\n     <rdf:li>dog</rdf:li>(?=\n    </rdf:Bag>\n   </dc:subject>)",
               rb"\n     <rdf:li>clipdesk\|cat</rdf:li>\n     <rdf:li>clipdesk\|dog</rdf:li>",
               rb"\n     <rdf:li>clipdesk/cat</rdf:li>\n     <rdf:li>clipdesk/dog</rdf:li>",
               rb'\n    xmlns:clipdesk="http://ns.clipdesk.org/xmp/1.0/"(?=>)',
               CLIPDESK_ELEMENTS + rb"(?=\n  </rdf:Description>)") == original
    data = exiv2_read(sidecar)  # exiv2 reads the old keywords and the new ones
    assert data["Xmp.dc.subject"] == ["Anna", "Beach & Dunes", "cat", "dog"]  # the user's "cat" once
    assert data["Xmp.lr.hierarchicalSubject"] == ["People|Anna", "Places|Beach & Dunes",
                                                  "clipdesk|cat", "clipdesk|dog"]
    assert data["Xmp.digiKam.TagsList"] == ["People/Anna", "Places/Beach & Dunes", "clipdesk/cat", "clipdesk/dog"]
    assert data["Xmp.clipdesk.Scores"] == ["cat=0.8000", "dog=0.1500"]
    assert other_properties(sidecar) == untouched  # ratings, labels, the title
    assert kinds(sidecar, "dc:subject") == ["Bag"] and kinds(sidecar, "lr:hierarchicalSubject") == ["Bag"]
    assert kinds(sidecar, "digiKam:TagsList") == ["Seq"]  # digiKam's own kind is kept

    undo_keywords()
    assert sha256(sidecar) == digest


def test_darktable_sidecar_changes_only_by_the_inserted_keywords_and_undo_restores_it(tmp_path):
    image = tmp_path / "IMG_0042.JPG"
    Image.new("RGB", (8, 8)).save(image)
    sidecar = tmp_path / "IMG_0042.JPG.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    original, digest = sidecar.read_bytes(), sha256(sidecar)
    untouched = other_properties(sidecar)
    assert untouched["Xmp.xmp.Rating"] == "1"
    assert untouched["Xmp.darktable.history[2]/darktable:operation"] == "colorin"

    write([(image, [("cat", 0.9)])])
    written = sidecar.read_bytes()
    # the namespaces declared after darktable's own, the new lists after its history
    assert cut(written,
               rb'(\n    xmlns:(dc|lr|clipdesk)="[^"]+"){3}(?=\n   exif:DateTimeOriginal)',
               OUR_ELEMENTS + rb"(?=\n  </rdf:Description>)") == original
    data = exiv2_read(sidecar)
    assert data["Xmp.dc.subject"] == ["cat"] and data["Xmp.lr.hierarchicalSubject"] == ["clipdesk|cat"]
    assert "Xmp.digiKam.TagsList" not in data  # not a digiKam file: lr's list is what digiKam reads
    assert other_properties(sidecar) == untouched  # the rating, every history attribute
    assert kinds(sidecar, "dc:subject") == ["Bag"] and kinds(sidecar, "lr:hierarchicalSubject") == ["Bag"]
    assert kinds(sidecar, "darktable:history") == ["Seq"]

    # classified again: clipdesk's own keyword is replaced, still nothing else moves
    write([(image, [("dog", 0.7)])])
    again = sidecar.read_bytes()
    assert exiv2_read(sidecar)["Xmp.dc.subject"] == ["dog"]
    assert cut(again, rb'(\n    xmlns:(dc|lr|clipdesk)="[^"]+"){3}', OUR_ELEMENTS) == original
    undo_keywords()  # the journal holds the last write: back to the first write's bytes
    assert sidecar.read_bytes() == written

    sidecar.write_bytes(original)
    write([(image, [("cat", 0.9)])])
    undo_keywords()
    assert sha256(sidecar) == digest


EXIFTOOL = shutil.which("exiftool")


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed (Debian: apt-get install "
                    "libimage-exiftool-perl); the other readers of these sidecars still run")
def test_exiftool_reads_the_merged_sidecars(tmp_path):
    """A second reader sharing no code with exiv2 or expat: ExifTool's own Perl XMP parser."""
    pairs = []
    for name, text in (("dk.jpg", DIGIKAM_SIDECAR), ("dt.jpg", DARKTABLE_SIDECAR)):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
        (tmp_path / f"{name}.xmp").write_text(text, encoding="utf-8")
        pairs.append((tmp_path / name, [("cat", 0.8), ("sofa", 0.1)]))
    write(pairs)
    out = subprocess.run([EXIFTOOL, "-j", "-struct", "-XMP:all", str(tmp_path / "dk.jpg.xmp"),
                          str(tmp_path / "dt.jpg.xmp")], capture_output=True, text=True, check=True, timeout=60)
    digikam, darktable = json.loads(out.stdout)
    assert digikam["Subject"] == ["Anna", "Beach & Dunes", "cat", "sofa"]
    assert digikam["HierarchicalSubject"] == ["People|Anna", "Places|Beach & Dunes", "clipdesk|cat", "clipdesk|sofa"]
    assert digikam["TagsList"] == ["People/Anna", "Places/Beach & Dunes", "clipdesk/cat", "clipdesk/sofa"]
    assert digikam["Rating"] == 3 and digikam["ColorLabel"] == 2 and digikam["Title"] == "Anna at the beach"
    assert darktable["Subject"] == ["cat", "sofa"]
    assert darktable["HierarchicalSubject"] == ["clipdesk|cat", "clipdesk|sofa"]
    assert darktable["Rating"] == 1 and darktable["DerivedFrom"] == "IMG_0042.JPG"
    assert [step["Operation"] for step in darktable["History"]] == ["exposure", "colorin"]


def test_undo_restores_the_sidecar_byte_for_byte_and_removes_new_ones(tmp_path):
    old, new = tmp_path / "old.jpg", tmp_path / "new.jpg"
    for path in (old, new):
        Image.new("RGB", (8, 8)).save(path)
    (tmp_path / "old.jpg.xmp").write_text(HAND_EDITED_SIDECAR, encoding="utf-8")
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
