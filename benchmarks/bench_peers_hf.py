"""clipdesk.load(...).classify against Hugging Face `pipeline("zero-shot-image-classification")`.

    PYTHONPATH=. python benchmarks/bench_peers_hf.py --images 500 --rounds 3

Same weights in both: clipdesk's seeded random ViT-B-32 (`pretrained="none"`: no download), whose
open_clip state dict is converted here to a transformers `CLIPModel` (OpenAI CLIP layout: the
fused attention in-projection split into q/k/v, projections transposed, GELU as open_clip's
ViT-B-32 uses), with a `CLIPTokenizer` written from open_clip's own BPE vocabulary and a
`CLIPImageProcessor` with open_clip's resize/crop/normalisation. Same 500 JPEGs (640×480), same
10 labels, no prompt template on either side; each tool at its documented batch size (the
pipeline's default 1, clipdesk's 32).

Each leg is a fresh subprocess (so peak RSS is the leg's own) that imports, loads, classifies;
legs interleave (`benchmarks/_compare.py`). The probabilities of the two are compared image by
image. transformers is not a clipdesk dependency: it is installed without touching the shared
venv's pins into `benchmarks/_data/hf-site` (`pip install --no-deps --target ...`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _compare import Sample, interleave  # noqa: E402

DATA = HERE / "_data" / "hf"
HF_SITE = HERE / "_data" / "hf-site"
HF_MODEL = DATA / "clip-vit-b32-seeded"
LABELS = ["a dog", "a cat", "a car", "a tree", "a beach", "a mountain", "a city", "a flower",
          "a plate of food", "a person"]
HF_PACKAGES = ["transformers==5.25.0", "tokenizers==0.23.3", "typer==0.29.2", "shellingham==1.5.4",
               "annotated-doc==0.0.7"]


def ensure_images(count: int) -> list[Path]:
    from _images import synth_photo

    folder = DATA / "images"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"img_{i:04d}.jpg" for i in range(count)]
    for path in paths:
        if not path.is_file():
            synth_photo(int(path.stem.split("_")[1]), (640, 480)).save(path, "JPEG", quality=90)
    return paths


def ensure_hf_site(installed: bool) -> None:
    """transformers for the pipeline leg: pinned in HF_SITE, or (`--installed-transformers`, on a
    machine that has it and cannot reach PyPI) the one already importable."""
    if installed:
        import transformers

        print(f"# transformers {transformers.__version__} as installed (not the pinned {HF_PACKAGES[0]})")
        return
    if not (HF_SITE / "transformers").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(HF_SITE),
                        *HF_PACKAGES], check=True)


def convert(state: dict, prefix_map: dict[str, str]) -> dict:
    """open_clip (OpenAI layout) tensors renamed to transformers' CLIPModel names."""
    out = {}
    for name, tensor in state.items():
        for old, new in prefix_map.items():
            if name.startswith(old):
                name = new + name[len(old):]
                break
        else:
            continue
        if name.endswith("attn.in_proj_weight") or name.endswith("attn.in_proj_bias"):
            kind = name.rsplit(".", 1)[1].replace("in_proj_", "")
            base = name.rsplit(".", 2)[0] + ".self_attn"
            for part, chunk in zip("qkv", tensor.chunk(3)):
                out[f"{base}.{part}_proj.{kind}"] = chunk
            continue
        name = (name.replace(".ln_1.", ".layer_norm1.").replace(".ln_2.", ".layer_norm2.")
                .replace(".attn.out_proj.", ".self_attn.out_proj.").replace(".mlp.c_fc.", ".mlp.fc1.")
                .replace(".mlp.c_proj.", ".mlp.fc2."))
        out[name] = tensor
    return out


def export_hf_model(model) -> None:
    """The seeded open_clip ViT-B-32 as a transformers model folder (tokenizer and processor too)."""
    import torch
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    state = model.state_dict()
    mapped = convert(state, {"transformer.resblocks.": "text_model.encoder.layers.",
                             "visual.transformer.resblocks.": "vision_model.encoder.layers."})
    mapped.update({
        "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "text_model.final_layer_norm.weight": state["ln_final.weight"],
        "text_model.final_layer_norm.bias": state["ln_final.bias"],
        "text_projection.weight": state["text_projection"].T.contiguous(),
        "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
        "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": state["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": state["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": state["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": state["visual.ln_post.bias"],
        "visual_projection.weight": state["visual.proj"].T.contiguous(),
        "logit_scale": state["logit_scale"],
    })
    config = CLIPConfig(
        text_config={"hidden_act": "gelu", "eos_token_id": 49407, "vocab_size": 49408},
        vision_config={"hidden_act": "gelu", "patch_size": 32, "image_size": 224}, projection_dim=512)
    hf = CLIPModel(config)
    missing, unexpected = hf.load_state_dict(mapped, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing or unexpected:
        raise SystemExit(f"weight conversion incomplete: missing {missing}, unexpected {unexpected}")
    HF_MODEL.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(HF_MODEL)
    bpe = SimpleTokenizer()
    # open_clip names its two special tokens differently; same ids (49406, 49407).
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    (DATA / "vocab.json").write_text(json.dumps({names.get(k, k): v for k, v in bpe.encoder.items()}))
    merges = sorted(bpe.bpe_ranks, key=bpe.bpe_ranks.get)
    (DATA / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    CLIPTokenizer(str(DATA / "vocab.json"), str(DATA / "merges.txt")).save_pretrained(HF_MODEL)
    mean, std = model.visual.image_mean, model.visual.image_std
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                       image_mean=list(mean or (0.48145466, 0.4578275, 0.40821073)),
                       image_std=list(std or (0.26862954, 0.26130258, 0.27577711))).save_pretrained(HF_MODEL)
    del torch


# -- the legs: each runs in its own process --------------------------------------------------------
def leg_clipdesk(paths: list[str]) -> dict:
    start = time.perf_counter()
    import clipdesk

    clf = clipdesk.load("ViT-B-32", pretrained="none", cache=False)
    loaded = time.perf_counter()
    results = clf.classify(paths, LABELS, templates="none")
    done = time.perf_counter()
    return {"load": loaded - start, "classify": done - loaded, "ran": clf.engine.encoder.__class__.__name__,
            "probs": [[r.scores[label] for label in LABELS] for r in results]}


def leg_hf(paths: list[str]) -> dict:
    start = time.perf_counter()
    # Hub "kernels" are downloaded layer replacements: off, as nothing here may download.
    os.environ["USE_HUB_KERNELS"] = "NO"
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, str(HF_SITE))
    from transformers import pipeline

    classifier = pipeline("zero-shot-image-classification", model=str(HF_MODEL), device="cpu")
    loaded = time.perf_counter()
    out = classifier(paths, candidate_labels=LABELS, hypothesis_template="{}")
    done = time.perf_counter()
    probs = [[{d["label"]: d["score"] for d in row}[label] for label in LABELS] for row in out]
    return {"load": loaded - start, "classify": done - loaded, "ran": "transformers", "probs": probs}


def peak_rss_mb() -> float:
    """This process's own peak (VmHWM): ru_maxrss would carry the parent's peak over fork + exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_leg(name: str, count: int, store: dict) -> Sample:
    done = subprocess.run([sys.executable, __file__, "--leg", name, "--images", str(count)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"leg {name} failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    store[name] = out["probs"]
    return Sample({"load s": out["load"], "images/s": count / out["classify"], "peak MB": out["rss"]},
                  out["ran"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--leg", choices=["clipdesk", "hf"])
    parser.add_argument("--installed-transformers", action="store_true",
                        help="use the transformers already importable instead of installing the pin")
    args = parser.parse_args()
    paths = [str(p) for p in ensure_images(args.images)]
    if args.leg:
        out = (leg_clipdesk if args.leg == "clipdesk" else leg_hf)(paths)
        out["rss"] = peak_rss_mb()
        print(json.dumps(out))
        return
    ensure_hf_site(args.installed_transformers)
    if not (HF_MODEL / "config.json").is_file():
        sys.path.insert(0, str(HF_SITE))
        import clipdesk

        export_hf_model(clipdesk.load("ViT-B-32", pretrained="none", backend="torch").engine.loaded.model)
    probs: dict = {}
    load_before = os.getloadavg()[0]
    results = interleave({"hf pipeline": lambda: run_leg("hf", args.images, probs),
                          "clipdesk": lambda: run_leg("clipdesk", args.images, probs)}, rounds=args.rounds)
    print(f"# {args.images} JPEGs 640×480, {len(LABELS)} labels, seeded ViT-B-32 in both (converted); "
          f"{os.cpu_count()} CPUs, load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f}\n")
    for key, unit in (("images/s", "img/s"), ("load s", "s"), ("peak MB", "MB")):
        print(results.table(base="hf pipeline", key=key, unit=unit), "\n")
    import numpy as np

    a, b = np.asarray(probs["clipdesk"]), np.asarray(probs["hf"])
    print(f"probabilities, clipdesk vs pipeline: max |difference| {np.abs(a - b).max():.2e}, "
          f"same top label on {np.mean(a.argmax(1) == b.argmax(1)):.1%} of images")


if __name__ == "__main__":
    main()
