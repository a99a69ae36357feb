"""The sidecar shapes other tools write, merged by `merge_keywords` without touching a byte it
does not have to: CRLF and a BOM, an xpacket wrapper with padding, several rdf:Description
blocks, an existing Seq, a keyword already there, empty lists, unusual prefixes, one-line files;
and the sidecars it must leave alone. Read back with ElementTree and exiv2, not with clipdesk's
own parser; "nothing else changed" is the original bytes once the inserted pieces are cut out.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pyexiv2
import pytest
from PIL import Image

from clipdesk.core.jobs import run_job
from clipdesk.core.keywords import KeywordOptions, merge_keywords, write_keywords_job

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
TAGS = {"dc:subject": "{http://purl.org/dc/elements/1.1/}subject",
        "lr:hierarchicalSubject": "{http://ns.adobe.com/lightroom/1.0/}hierarchicalSubject"}
RDF_OPEN = ('<x:xmpmeta xmlns:x="adobe:ns:meta/">\n <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
            '22-rdf-syntax-ns#">\n')
RDF_CLOSE = " </rdf:RDF>\n</x:xmpmeta>\n"
CLIPDESK = rb"(\r?\n? *<(clipdesk:Keywords|clipdesk:Scores)>.*?</\2>){2}"


def lists(data: bytes, prop: str) -> list[tuple[str, list[str]]]:
    """(container kind, item texts) for each occurrence of the property, by ElementTree."""
    root = ET.fromstring(data)
    return [(box.tag.removeprefix(RDF), [li.text for li in box.iter(f"{RDF}li")])
            for node in root.iter(TAGS[prop]) for box in node]


def exiv2_read(data: bytes, tmp_path: Path) -> dict:
    path = tmp_path / "read.xmp"
    path.write_bytes(data)
    image = pyexiv2.Image(str(path))
    try:
        return image.read_xmp()
    finally:
        image.close()


def cut(text: bytes, *patterns: bytes) -> bytes:
    """`text` with each expected inserted piece (a regular expression matching once) cut out."""
    for pattern in patterns:
        assert len(re.findall(pattern, text, flags=re.DOTALL)) == 1, pattern
        text = re.sub(pattern, b"", text, count=1, flags=re.DOTALL)
    return text


def test_crlf_bom_and_xpacket_padding_are_kept(tmp_path):
    padding = (" " * 99 + "\n") * 20
    text = ('\ufeff<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + RDF_OPEN +
            '  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
            '    xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="2">\n'
            '   <dc:subject>\n    <rdf:Bag>\n     <rdf:li>tree</rdf:li>\n    </rdf:Bag>\n   </dc:subject>\n'
            '  </rdf:Description>\n' + RDF_CLOSE + padding + '<?xpacket end="w"?>')
    original = text.replace("\n", "\r\n").encode("utf-8")
    out = merge_keywords(original, [("cat", 0.9)], "clipdesk")
    assert out.startswith(b"\xef\xbb\xbf<?xpacket") and out.endswith(padding.replace("\n", "\r\n").encode()
                                                                      + b'<?xpacket end="w"?>')
    assert re.search(rb"(?<!\r)\n", out) is None  # every line the splice added ends in CRLF too
    assert cut(out, CLIPDESK, rb"\r\n     <rdf:li>cat</rdf:li>", rb'(\r\n    xmlns:(lr|clipdesk)="[^"]+"){2}(?= xmp:Rating)',
               rb"\r\n   <lr:hierarchicalSubject>.*?</lr:hierarchicalSubject>") == original
    data = exiv2_read(out, tmp_path)
    assert data["Xmp.dc.subject"] == ["tree", "cat"] and data["Xmp.xmp.Rating"] == "2"
    assert data["Xmp.lr.hierarchicalSubject"] == ["clipdesk|cat"]


def test_several_descriptions_each_kept_the_keywords_go_where_the_list_is(tmp_path):
    original = (RDF_OPEN +
                '  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="5"/>\n'
                '  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
                '   <dc:subject><rdf:Bag><rdf:li>sea</rdf:li></rdf:Bag></dc:subject>\n'
                '  </rdf:Description>\n'
                '  <rdf:Description rdf:about="" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/">\n'
                '   <photoshop:City>Porto</photoshop:City>\n'
                '  </rdf:Description>\n' + RDF_CLOSE).encode()
    out = merge_keywords(original, [("boat", 0.6)], "clipdesk")
    assert cut(out, rb"<rdf:li>boat</rdf:li>(?=</rdf:Bag></dc:subject>)",
               rb' xmlns:lr="[^"]+" xmlns:clipdesk="[^"]+"(?=>\n   <dc:subject>)',
               CLIPDESK + rb"(?=\n  </rdf:Description>\n  <rdf:Description rdf:about=\"\" xmlns:photoshop)",
               rb"\n   <lr:hierarchicalSubject>.*?</lr:hierarchicalSubject>(?=\n  </rdf:Description>)",
               ) == original
    data = exiv2_read(out, tmp_path)
    assert data["Xmp.dc.subject"] == ["sea", "boat"] and data["Xmp.xmp.Rating"] == "5"
    assert data["Xmp.photoshop.City"] == "Porto"


def test_an_existing_seq_stays_a_seq_and_a_present_keyword_is_not_repeated(tmp_path):
    original = (RDF_OPEN + '  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
                ' xmlns:lr="http://ns.adobe.com/lightroom/1.0/">\n'
                '   <dc:subject>\n    <rdf:Seq>\n     <rdf:li>cat</rdf:li>\n    </rdf:Seq>\n   </dc:subject>\n'
                '   <lr:hierarchicalSubject>\n    <rdf:Seq>\n     <rdf:li>clipdesk|cat</rdf:li>\n'
                '    </rdf:Seq>\n   </lr:hierarchicalSubject>\n'
                '  </rdf:Description>\n' + RDF_CLOSE).encode()
    out = merge_keywords(original, [("cat", 0.9), ("dog", 0.4)], "clipdesk")
    assert lists(out, "dc:subject") == [("Seq", ["cat", "dog"])]
    assert lists(out, "lr:hierarchicalSubject") == [("Seq", ["clipdesk|cat", "clipdesk|dog"])]
    assert cut(out, CLIPDESK, rb"\n     <rdf:li>dog</rdf:li>", rb"\n     <rdf:li>clipdesk\|dog</rdf:li>",
               rb' xmlns:clipdesk="[^"]+"') == original
    # the user typed "cat": a later run predicting "dog" alone keeps it
    later = merge_keywords(out, [("dog", 0.8)], "clipdesk")
    assert lists(later, "dc:subject") == [("Seq", ["cat", "dog"])]
    assert lists(later, "lr:hierarchicalSubject") == [("Seq", ["clipdesk|dog"])]  # clipdesk's branch
    # its old item went with its line, the new one took the same place: nothing else moved
    assert cut(later, CLIPDESK, rb"\n     <rdf:li>dog</rdf:li>", rb' xmlns:clipdesk="[^"]+"').replace(
        b"clipdesk|dog", b"clipdesk|cat") == original


def test_empty_lists_one_line_files_and_self_closing_descriptions(tmp_path):
    empty_bag = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax'
                 b'-ns#"><rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject>'
                 b'<rdf:Bag/></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>')
    out = merge_keywords(empty_bag, [("cat", 0.9)], "")
    assert b"\n" not in out  # a one-line file stays one line
    assert lists(out, "dc:subject") == [("Bag", ["cat"])]
    assert cut(out, CLIPDESK, rb' xmlns:clipdesk="[^"]+"').replace(
        b"<rdf:Bag><rdf:li>cat</rdf:li></rdf:Bag>", b"<rdf:Bag/>") == empty_bag

    closed = (RDF_OPEN + '  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
              '   xmp:Rating="5" xmp:Label="5 > 4"/>\n' + RDF_CLOSE).encode()  # a '>' in a value
    out = merge_keywords(closed, [("cat", 0.9)], "clipdesk")
    assert lists(out, "dc:subject") == [("Bag", ["cat"])]
    opened = re.sub(rb">(\n   <dc:subject>.*)\n  </rdf:Description>", b"/>", out, flags=re.DOTALL)
    assert cut(opened, rb'( xmlns:(dc|lr|clipdesk)="[^"]+"){3}(?=\n   xmp:Rating)') == closed
    data = exiv2_read(out, tmp_path)
    assert data["Xmp.xmp.Rating"] == "5" and data["Xmp.xmp.Label"] == "5 > 4"


def test_unusual_prefixes_and_text_that_needs_escaping(tmp_path):
    original = (RDF_OPEN + '  <rdf:Description rdf:about="" xmlns:purl="http://purl.org/dc/elements/1.1/"\n'
                '    xmlns:lr="http://example.com/not-lightroom/" lr:mood="calm">\n'
                '   <purl:subject><rdf:Bag><rdf:li>a &amp; bä</rdf:li></rdf:Bag></purl:subject>\n'
                '  </rdf:Description>\n' + RDF_CLOSE).encode()
    out = merge_keywords(original, [("Tom & Jerry <3", 0.9), ("café 猫", 0.1)], "clipdesk")  # offsets in bytes
    assert b"<purl:li>" not in out and b"<dc:" not in out  # the file's own prefix for dc is used
    assert b'xmlns:lr1="http://ns.adobe.com/lightroom/1.0/"' in out  # "lr" means something else here
    assert lists(out, "dc:subject") == [("Bag", ["a & bä", "Tom & Jerry <3", "café 猫"])]
    assert lists(out, "lr:hierarchicalSubject") == [("Bag", ["clipdesk|Tom & Jerry <3", "clipdesk|café 猫"])]
    assert ET.fromstring(out).find(f"{RDF}RDF/{RDF}Description").get("{http://example.com/not-lightroom/}mood") \
        == "calm"
    # not read with exiv2: its namespace registry is global to the process, and a file binding "lr"
    # to another URI makes every later exiv2 write in the process put Lightroom's keywords there


BAD = {
    "attribute": (RDF_OPEN + '  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
                  ' dc:subject="cat"/>\n' + RDF_CLOSE).encode(),
    "doctype": ('<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>' + RDF_OPEN + RDF_CLOSE).encode(),
    "utf16": (RDF_OPEN + '  <rdf:Description rdf:about=""/>\n' + RDF_CLOSE).encode("utf-16"),
    "latin1": ('<?xml version="1.0" encoding="ISO-8859-1"?>' + RDF_OPEN + '  <rdf:Description rdf:about=""/>\n'
               + RDF_CLOSE).encode("latin-1"),
    "not rdf": b'<?xml version="1.0"?><settings><a>1</a></settings>',
    "truncated": (RDF_OPEN + '  <rdf:Description rdf:about="">\n').encode(),
}
REASONS = {"attribute": "dc:subject is a single value", "doctype": "DOCTYPE", "utf16": "UTF-16",
           "latin1": "ISO-8859-1", "not rdf": "no rdf:RDF", "truncated": "not well-formed"}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_sidecar_clipdesk_cannot_edit_is_left_alone_with_one_note(tmp_path, kind):
    image = tmp_path / "a.jpg"
    Image.new("RGB", (8, 8)).save(image)
    sidecar = tmp_path / "a.jpg.xmp"
    sidecar.write_bytes(BAD[kind])
    record = run_job(write_keywords_job([(image, [("cat", 0.9)])], KeywordOptions()))
    assert sidecar.read_bytes() == BAD[kind]
    assert record.written == [] and len(record.notes) == 1
    assert "could not be read as XMP" in record.notes[0] and REASONS[kind] in record.notes[0]
    assert "\n" not in record.notes[0]  # one sentence, no traceback


def test_labels_with_control_characters_still_make_well_formed_xmp(tmp_path):
    empty = (RDF_OPEN + '  <rdf:Description rdf:about=""/>\n' + RDF_CLOSE).encode()
    out = merge_keywords(empty, [("two\r\nlines", 0.5), ("nul\x00byte", 0.2)], "")
    # XML cannot carry NUL: it is dropped; a CR survives as a reference (a literal one reads as LF)
    assert lists(out, "dc:subject") == [("Bag", ["two\r\nlines", "nulbyte"])]
    assert exiv2_read(out, tmp_path)["Xmp.dc.subject"] == ["two\r\nlines", "nulbyte"]
