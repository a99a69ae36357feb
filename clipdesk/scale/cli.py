"""The scale commands on clipdesk's command line: `index`, `classify --ray`, `search --index`.

`register` only adds argparse options; ray, pyarrow, faiss and usearch are imported when one of
these commands runs, so `clipdesk classify` without `--ray` never loads them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ..commands import (
    EXIT_OK,
    UsageError,
    classify_rows,
    model_labels,
    note,
    open_engine,
    read_label_args,
    report_failures,
    require_some_valid_score,
    write_rows,
)
from ..console import drive
from ..options import add_model_options, add_templates_option, batch_size, positive_int

# `search --index --ann KIND`: clipdesk.scale.ann.LIBRARIES names, spelled for people (not imported
# here: FAISS is loaded only by a search that needs it).
ANN_KINDS = {"compact": "faiss-ivfpqr", "rerank": "faiss-pq"}
RAY_HELP = "run on Ray: no value starts a local Ray on this machine, ADDRESS (or RAY_ADDRESS) joins a cluster"


def register(commands, classify: argparse.ArgumentParser, search: argparse.ArgumentParser) -> None:
    """Add `index`, and the `--ray` / `--index` options to the existing classify and search."""
    index = commands.add_parser("index", help="embed (and classify) many images into Parquet shards")
    index.add_argument("paths", nargs="+", metavar="PATH",
                       help="folders, image files, text files of paths, or fsspec URLs")
    index.add_argument("--out", type=Path, required=True, metavar="INDEX_DIR", help="where the shards go")
    index.add_argument("--labels", help="also classify: comma-separated labels")
    add_templates_option(index)
    index.add_argument("--multi-label", action="store_true")
    add_model_options(index)
    _add_scale_options(index)
    index.add_argument("--batch-size", type=batch_size, default=32)
    index.add_argument("--exact", action="store_true", help="decode JPEGs at full size")
    index.set_defaults(handler=cmd_index)

    _add_scale_options(classify)
    classify.add_argument("--out", type=Path, metavar="INDEX_DIR",
                          help="with --ray: keep the shards here (a re-run resumes); default a temporary folder")
    single = classify.get_default("handler")
    classify.set_defaults(handler=lambda args: cmd_classify_ray(args) if args.ray is not None else single(args))

    for action in search._actions:  # PATH becomes optional: --index replaces it
        if action.dest == "paths":
            action.nargs = "*"
    search.add_argument("--index", type=Path, metavar="INDEX_DIR", help="search an index built by `clipdesk index`")
    search.add_argument("--exact-search", action="store_true", help="with --index: brute force, not the ANN index")
    search.add_argument("--ann", choices=sorted(ANN_KINDS),
                        help="with --index, for 20,000 images or more: the vector index to build, kept with the "
                             "index folder until asked again. compact (default): ~60 B a vector, recall@10 ~0.8 "
                             "on a million clustered vectors; rerank: 2 KB a vector, float32 re-rank, recall@10 ~0.99")
    plain = search.get_default("handler")
    search.set_defaults(handler=lambda args: cmd_search_index(args) if args.index is not None else _need_paths(plain, args))


def _add_scale_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scale")
    group.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS", help=RAY_HELP)
    group.add_argument("--workers", type=positive_int, default=None,
                       help="encoder actors (default: one per GPU, or CPUs − 1)")
    group.add_argument("--shard-size", type=positive_int, default=1000, help="images per shard, on average")


def _need_paths(handler, args) -> int:
    if not args.paths:
        raise UsageError("Give image files or folders to search, or --index INDEX_DIR.")
    return handler(args)


def _spec(args, engine):
    """What the workers open: the model the driver resolved (defaults filled in)."""
    from .pipeline import ModelSpec

    loaded = engine.encoder.loaded
    return ModelSpec(loaded.arch, loaded.pretrained, args.device, args.backend, args.precision)


def _open(args):
    """The driver's engine (labels, scoring, queries); the embedding cache is not used here."""
    from .pipeline import check_reachable, import_ray

    if getattr(args, "ray", None) is not None:
        import_ray()  # one sentence on how to install it, before loading any model
        check_reachable(args.ray or None)  # an address nobody answers on: seconds, not minutes
    # With Ray the driver only encodes labels and queries: on the CPU, whatever the workers use.
    device = "cpu" if getattr(args, "ray", None) is not None else args.device
    return open_engine(argparse.Namespace(**{**vars(args), "no_cache": True, "device": device}))


def _run_index(args, engine, labels, templates: str, out: Path):
    from .pipeline import IndexOptions, index_job

    options = IndexOptions(labels=labels, templates=templates, multi_label=args.multi_label,
                           exact=args.exact, batch_size=args.batch_size, shard_size=args.shard_size,
                           workers=args.workers, use_ray=args.ray is not None)
    result = drive(index_job(_spec(args, engine), args.paths, out, engine, options, address=args.ray or None))
    for message in result.missing.values():
        note(message)
    return result


def cmd_index(args) -> int:
    from ..core.prompts import default_templates, split_labels

    labels = split_labels(args.labels) if args.labels else None
    engine = _open(args)
    result = _run_index(args, engine, labels, default_templates(args.templates, engine.loaded.metadata), args.out)
    rescored = f"{result.rescored} re-scored from their stored embeddings, " if result.rescored else ""
    print(f"{result.folder}: {len(result.shards)} shards "
          f"({result.written} written, {rescored}{result.skipped} already there), {result.images} images, "
          f"{result.failed} could not be read.")
    return EXIT_OK


def cmd_classify_ray(args) -> int:
    """classify --ray: index into shards, then print the same rows as the single-process path."""
    if args.threshold is not None and not args.multi_label:
        raise UsageError("--threshold applies to --multi-label; without it each image gets its best label.")
    labels = read_label_args(args)
    engine = _open(args)
    labels, templates = model_labels(engine.loaded, labels, args.templates)  # no --labels: the model's classes
    args.templates = templates
    with tempfile.TemporaryDirectory(prefix="clipdesk-index-") as temp:
        out = args.out or Path(temp)
        result = _run_index(args, engine, labels, templates, out)
        embedded, quarters = _embedded(result)
    label_set = engine.label_set(labels, args.templates)
    for text in label_set.notes:
        note(text)
    scores = engine.score(embedded.features, label_set, multi_label=args.multi_label, templates=args.templates,
                          quarters=quarters if args.multi_label else None)
    files = [_as_path(e.path) for e in result.entries]
    missing = {_as_path(p): m for p, m in result.missing.items()}
    rows = classify_rows(files, missing, embedded, scores, args.top_k, args.threshold)
    require_some_valid_score(embedded, scores)
    write_rows(rows, label_set.names, args.format)
    report_failures(rows)
    return EXIT_OK


def _as_path(path: str):
    return path if "://" in path else Path(path)


def _embedded(result):
    """The shards' rows as core's EmbedResult, so classify's own row builder prints them, and
    the quarters' embeddings aligned with it (None when the shards hold none)."""
    import numpy as np

    from ..core.embed import EmbedResult
    from .shards import read_shard

    embedded, vectors, quarters = EmbedResult(), [], []
    for name in result.shards:
        columns = read_shard(result.folder / name, ["path", "digest", "error", "embedding", "quarters"])
        for row, (path, digest, error) in enumerate(zip(columns["path"], columns["digest"], columns["error"])):
            if error:
                embedded.errors[_as_path(path)] = error
                continue
            embedded.paths.append(_as_path(path))
            embedded.digests.append(digest)
            vectors.append(columns["embedding"][row])
            quarters.append(columns["quarters"][row] if "quarters" in columns else None)
    embedded.features = np.stack(vectors) if vectors else np.zeros((0, result.dim), np.float32)
    if any(q is None for q in quarters):
        return embedded, None
    return embedded, np.stack(quarters) if quarters else np.zeros((0, 4, result.dim), np.float32)


def cmd_search_index(args) -> int:
    from ..core.errors import ImageLoadError
    from .ann import VectorIndex
    from .pipeline import ModelSpec
    from .shards import read_manifest

    if args.paths:
        raise UsageError("Give either PATHs or --index, not both.")
    manifest = read_manifest(args.index)
    spec = ModelSpec(**manifest["model"])
    _check_model(args, spec)
    engine = open_engine(argparse.Namespace(model=spec.arch, pretrained=spec.pretrained, device=args.device,
                                            backend=args.backend, precision=spec.precision, no_cache=args.no_cache))
    if args.query is not None:
        query = engine.label_weights([_label(args.query)], "none")[0]
    else:
        try:
            query = engine.embed_image(args.image)
        except ImageLoadError as error:
            raise UsageError(str(error)) from error
    index = VectorIndex(args.index, library=ANN_KINDS.get(args.ann))  # None: the kind the folder has
    index.update(manifest)
    hits = index.search(query, args.top_k, exact=args.exact_search)
    rows = [{"rank": n + 1, "path": path, "score": round(score, 6)} for n, (path, score) in enumerate(hits)]
    if args.format == "json":
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    elif args.format == "csv":
        print("rank,path,score")
        for row in rows:
            print(f"{row['rank']},{json.dumps(row['path'])},{row['score']}")
    else:
        for row in rows:
            print(f"{row['rank']:>3}  {row['score']:+.4f}  {row['path']}")
    return EXIT_OK


def _check_model(args, spec) -> None:
    """An explicit --model/--pretrained must be the index's: its vectors mean nothing to another model."""
    from ..core.errors import ClipdeskError
    from ..core.models import resolve_source

    if args.model is None and args.pretrained is None:
        return  # the index's own model
    arch, pretrained = resolve_source(args.model, args.pretrained)
    try:
        built_arch, built_pretrained = resolve_source(spec.arch, spec.pretrained)
    except ClipdeskError:  # e.g. the index's model folder was replaced: compare as written
        built_arch, built_pretrained = spec.arch, spec.pretrained
    # Only what was given is compared: `--model ViT-B-32` alone does not pick a pretrained tag.
    arch_given = args.model is not None or _folder(pretrained) is not None  # a folder names its model
    pretrained_given = args.pretrained is not None or args.model.strip().lower() == "demo"
    if (arch_given and arch != built_arch) or (pretrained_given and _same(pretrained) != _same(built_pretrained)):
        raise UsageError(f"{args.index} was built with {built_arch} ({spec.pretrained}), not {arch} ({pretrained}); "
                         "leave out --model and --pretrained to search it with its own model.")


def _folder(pretrained: str):
    from ..core.demo import demo_model_dir

    if pretrained.strip().lower() == "demo":
        return demo_model_dir().resolve()
    path = Path(pretrained).expanduser()
    return path.resolve() if path.is_dir() else None


def _same(pretrained: str) -> str:
    """A pretrained tag as written; a model folder (or `demo`) as its resolved path."""
    folder = _folder(pretrained)
    return str(folder) if folder is not None else pretrained


def _label(text: str):
    from ..core.errors import LabelError
    from ..core.prompts import Label

    if not text.strip():
        raise LabelError("The search query is empty.")
    return Label(text.strip())
