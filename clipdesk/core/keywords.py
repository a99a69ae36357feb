"""Predicted labels as XMP keywords, where photo tools look for them (digiKam, Lightroom,
darktable, Apple/Google Photos importers), with an undo journal.

By default every image gets a sidecar, never a rewritten image: `IMG_0042.jpg.xmp`
(`naming="append"`: digiKam and darktable, which keep the extension's case, `IMG_0042.JPG.xmp`) or
`IMG_0042.xmp` (`naming="replace"`: Lightroom, Capture One). `embed=True` writes into JPEG/PNG/WebP
files instead; RAW and HEIC files always get a sidecar.

Per image clipdesk writes each label as a flat keyword (`dc:subject`), as a hierarchical one under
`hierarchy` (`lr:hierarchicalSubject` "clipdesk|cat"; digiKam's `TagsList` "clipdesk/cat" where the
sidecar has one, since digiKam reads it before lr's), and its scores in its own namespace. New
lists are `rdf:Bag`s, as the XMP specification and these tools write them.

A sidecar that exists is merged by splicing text (`xmp_splice`): only those lists and clipdesk's
own properties change, every other byte of the file stays as the other tool wrote it. A library
that re-serialises the packet (exiv2, the XMP Toolkit) would keep values but not bytes, and exiv2
writes every list as an `rdf:Seq`. Re-running replaces only the keywords clipdesk added the last
time (remembered in `clipdesk:Keywords`), never one the user typed. A sidecar that is not XMP
clipdesk can edit is left alone with one note.

Embedding goes through exiv2 (`pyexiv2`, the `keywords` extra: the library digiKam and darktable
use, a wheel with no system library): the image's packet is spliced the same way and handed to
exiv2 whole (`modify_raw_xmp`), so its lists stay Bags; exiv2 lays out the packet in the image.

Undo restores each file exactly (byte for byte, from a backup taken before the write) but only if
the file is still what clipdesk wrote: a sidecar edited since stays as it is.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import atomic_path, write_json_atomic
from .decoders import is_raw
from .digest import file_digest
from .errors import ClipdeskError
from .jobs import CancelToken, Job, Progress, check
from .paths import config_dir, data_dir
from .xmp_splice import Prop, XmpDocument, XmpSyntaxError, clean_text

NAMESPACE = "http://ns.clipdesk.org/xmp/1.0/"
JOURNAL_FILE = "last_keywords.json"
EMBEDDABLE = frozenset({".jpg", ".jpeg", ".png", ".webp"})
MAX_SIDECAR_BYTES = 16 * 1024 * 1024  # a sidecar is a few KB; anything this big is not one
# A new sidecar: the packet the keyword lists are spliced into (its namespaces declared up front,
# laid out as exiv2 lays out the sidecars digiKam and darktable write).
EMPTY_PACKET = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    '  <rdf:Description rdf:about=""\n'
    '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
    '    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"\n'
    f'    xmlns:clipdesk="{NAMESPACE}">\n'
    '  </rdf:Description>\n'
    ' </rdf:RDF>\n'
    '</x:xmpmeta>\n'
    '<?xpacket end="w"?>\n'
)
SUBJECT = Prop("http://purl.org/dc/elements/1.1/", "subject", "dc")
HIERARCHY = Prop("http://ns.adobe.com/lightroom/1.0/", "hierarchicalSubject", "lr")
DIGIKAM = Prop("http://www.digikam.org/ns/1.0/", "TagsList", "digiKam")
OURS, SCORES = Prop(NAMESPACE, "Keywords", "clipdesk"), Prop(NAMESPACE, "Scores", "clipdesk")


class KeywordError(ClipdeskError):
    """Keywords cannot be written (the library is missing) or undone."""


@dataclass(frozen=True)
class KeywordOptions:
    hierarchy: str = "clipdesk"  # keyword path above each label; "" writes flat keywords only
    naming: str = "append"  # "append": IMG.jpg.xmp (digiKam, darktable); "replace": IMG.xmp (Lightroom)
    embed: bool = False  # write into JPEG/PNG/WebP files themselves instead of a sidecar

    def __post_init__(self) -> None:
        if self.naming not in ("append", "replace"):
            raise KeywordError(f"Unknown sidecar naming '{self.naming}'; choose append or replace.")
        if any(c in self.hierarchy for c in "|/"):
            raise KeywordError("The keyword hierarchy is one name: it may not contain '|' or '/'.")


@dataclass
class KeywordRecord:
    """What one write did, enough to undo it: per file its digest after the write and the backup
    of what was there before (None: the file did not exist)."""

    written: list[dict] = field(default_factory=list)  # {"path", "after", "backup"}
    notes: list[str] = field(default_factory=list)

    def message(self) -> str:
        text = f"Wrote keywords for {len(self.written)} image(s)"
        return text + (f"; {len(self.notes)} left alone ({self.notes[0]})." if self.notes else ".")


def sidecar_path(image: Path, naming: str = "append") -> Path:
    """Where a sidecar for `image` lives under the chosen naming."""
    image = Path(image)
    return image.with_name(image.name + ".xmp") if naming == "append" else image.with_suffix(".xmp")


def target_for(image: Path, options: KeywordOptions) -> Path:
    """The file that receives the keywords: the image itself only when embedding into a format
    exiv2 rewrites safely; RAW, HEIC and everything else always get a sidecar."""
    image = Path(image)
    if options.embed and image.suffix.lower() in EMBEDDABLE and not is_raw(image):
        return image
    return sidecar_path(image, options.naming)


def _exiv2():
    """pyexiv2, imported on first use: embedding is an optional extra (sidecars need nothing)."""
    try:
        import pyexiv2
    except ImportError as error:
        raise KeywordError("Embedding keywords in images needs pyexiv2: pip install 'clipdesk[keywords]'.") from error
    pyexiv2.registerNs(NAMESPACE, "clipdesk")
    pyexiv2.set_log_level(4)  # exiv2's own warnings would go to stderr; errors still raise
    return pyexiv2


def merge_keywords(packet: bytes, labels: Sequence[tuple[str, float]], hierarchy: str) -> bytes:
    """`packet` with these labels spliced in: the user's keywords kept in their place, the ones
    clipdesk wrote last time and no longer predicts removed, every other byte unchanged.
    Raises XmpSyntaxError for a packet that cannot be edited."""
    doc = XmpDocument(packet)
    names = list(dict.fromkeys(clean_text(name) for name, _ in labels))
    ours_before = set(doc.items(OURS))
    subjects = doc.items(SUBJECT)
    users = [k for k in subjects if k not in ours_before]
    stale = {k for k in subjects if k in ours_before and k not in names}
    doc.update(SUBJECT, stale, [n for n in names if n not in subjects])
    if hierarchy:
        lists = [(HIERARCHY, "|")] + ([(DIGIKAM, "/")] if doc.kind(DIGIKAM) else [])
        for prop, sep in lists:
            existing = doc.items(prop)
            wanted = [f"{hierarchy}{sep}{n}" for n in names]
            old = {k for k in existing if k.startswith(hierarchy + sep) and k not in wanted}
            doc.update(prop, old, [w for w in wanted if w not in existing])
    doc.replace(OURS, [n for n in names if n not in users])
    doc.replace(SCORES, [f"{clean_text(name)}={score:.4f}" for name, score in labels], kind="Seq")
    return doc.result()


def write_keywords_job(assignments: Iterable[tuple[Path, Sequence[tuple[str, float]]]],
                       options: KeywordOptions | None = None,
                       cancel: CancelToken | None = None) -> Job[KeywordRecord]:
    """Write each image's (label, score) pairs; the journal is saved at the end (also when
    cancelled: what was written can be undone)."""
    options = options or KeywordOptions()
    exiv2 = _exiv2() if options.embed else None
    todo = list(assignments)
    record = KeywordRecord()
    backups = data_dir() / "keyword-backups"
    try:
        for done, (image, labels) in enumerate(todo):
            check(cancel)
            yield Progress(done, len(todo), f"Writing keywords {done + 1}/{len(todo)}")
            problem = _write_one(exiv2, Path(image), labels, options, backups, record)
            if problem:
                record.notes.append(problem)
    finally:
        if record.written:
            save_journal(record)
    return record


def _write_one(exiv2, image: Path, labels, options: KeywordOptions, backups: Path,
               record: KeywordRecord) -> str | None:
    """One image; returns why it was left alone, or None."""
    target = target_for(image, options)
    if target != image and not image.is_file():
        return f"{image} is no longer there"
    existed = os.path.lexists(target)
    if existed and (target.is_symlink() or not target.is_file()):
        return f"{target} is not a plain file"
    if existed and target != image and target.stat().st_size > MAX_SIDECAR_BYTES:
        return f"{target} is too large to be a sidecar"
    try:
        if target == image:
            backup = _embed(exiv2, target, labels, options.hierarchy, backups)
        else:
            backup = _write_sidecar(target, existed, labels, options.hierarchy, backups)
    except (XmpSyntaxError, _Unreadable) as error:
        return f"{target} could not be read as XMP ({error}); it was left as it is"
    except OSError as error:
        return f"{target} could not be written ({error.strerror or error})"
    record.written.append({"path": str(target), "after": file_digest(target), "backup": backup})
    return None


def _write_sidecar(target: Path, existed: bool, labels, hierarchy: str, backups: Path) -> str | None:
    """Splice the keywords into the sidecar's own bytes (a new one starts from EMPTY_PACKET);
    returns the backup's digest, None for a new file."""
    before = target.read_bytes() if existed else EMPTY_PACKET.encode("utf-8")
    after = merge_keywords(before, labels, hierarchy)
    with atomic_path(target) as temp:
        temp.write_bytes(after)
        backup = _backup(target, backups) if existed else None
    return backup


def _embed(exiv2, image: Path, labels, hierarchy: str, backups: Path) -> str:
    """The image's XMP packet spliced like a sidecar and handed back to exiv2 whole: exiv2 keeps
    each list's kind from the packet (its per-property API would make them all Seqs)."""
    with atomic_path(image) as temp:
        shutil.copyfile(image, temp)
        try:
            handle = exiv2.Image(str(temp))
        except Exception as error:  # exiv2 reports every parse failure as RuntimeError text
            raise _Unreadable(_first_line(error)) from error
        try:
            packet = handle.read_raw_xmp() or EMPTY_PACKET
            spliced = merge_keywords(packet.encode("utf-8"), labels, hierarchy)
            handle.modify_raw_xmp(spliced.decode("utf-8"))
        except XmpSyntaxError:
            raise
        except Exception as error:
            raise _Unreadable(_first_line(error)) from error
        finally:
            handle.close()
        return _backup(image, backups)


class _Unreadable(Exception):
    pass


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _backup(path: Path, folder: Path) -> str:
    """A content-addressed copy of the file as it was, for undo."""
    digest = file_digest(path)
    copy = folder / digest
    if not copy.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(copy) as temp:
            shutil.copyfile(path, temp)
    return digest


# -- journal and undo ---------------------------------------------------------------------------
def journal_path() -> Path:
    return config_dir() / JOURNAL_FILE


def save_journal(record: KeywordRecord) -> None:
    write_json_atomic(journal_path(), {"kind": "clipdesk-keywords", "written": record.written})


def load_journal(path: Path | None = None) -> KeywordRecord:
    from .safeio import read_text_guarded

    path = Path(path) if path else journal_path()
    if not os.path.lexists(path):
        raise KeywordError("There is no keyword write to undo." if path == journal_path()
                           else f"{path} does not exist.")
    try:
        data = json.loads(read_text_guarded(path, "json"))
        if data.get("kind") != "clipdesk-keywords" or not isinstance(data.get("written"), list):
            raise ValueError("not a keyword journal")
        written = [{"path": str(e["path"]), "after": str(e["after"]),
                    "backup": None if e.get("backup") is None else str(e["backup"])}
                   for e in data["written"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ClipdeskError) as error:
        raise KeywordError(f"{path} is not a clipdesk keyword journal ({error}).") from None
    return KeywordRecord(written=written)


@dataclass
class KeywordUndo:
    restored: list[Path] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def message(self) -> str:
        text = f"Undid the keyword write: {len(self.restored)} file(s) restored"
        return text + (f", {len(self.kept)} kept as they are ({self.kept[0]})." if self.kept else ".")


def undo_keywords(record: KeywordRecord | None = None, journal: Path | None = None) -> KeywordUndo:
    """Put every file back as it was before the write, touching only files whose content is
    still exactly what clipdesk wrote; a sidecar clipdesk created is removed."""
    from_file = record is None
    record = record or load_journal(journal)
    result = KeywordUndo()
    backups = data_dir() / "keyword-backups"
    for entry in reversed(record.written):
        path = Path(entry["path"])
        try:
            current = file_digest(path) if path.is_file() and not path.is_symlink() else None
        except OSError:
            current = None
        if current != entry["after"]:
            result.kept.append(f"{path} was changed or removed since the write")
            continue
        if entry["backup"] is None:
            path.unlink()
        else:
            source = backups / entry["backup"]
            if not source.is_file() or file_digest(source) != entry["backup"]:
                result.kept.append(f"the backup of {path} is missing")
                continue
            with atomic_path(path) as temp:
                shutil.copyfile(source, temp)
        result.restored.append(path)
    if result.kept and not result.restored:
        raise KeywordError(f"Nothing was undone, to lose no data: {result.kept[0]}.")
    if from_file and journal is None:
        with contextlib.suppress(OSError):
            journal_path().unlink()
    return result
