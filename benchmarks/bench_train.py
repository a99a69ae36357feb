"""One `full` fine-tune step vs a plain open_clip training step on the same batch.

Plain: model(images, prompts) + open_clip ClipLoss + backward + AdamW step (open_clip_train's step).
Full:  the training.loop pieces — same-class masking (GroupedClipLoss), no-decay groups,
       scheduled lr, logit_scale clamp.
Same work in both: the same images and the same text-tower input — the batch's unique class
prompts (`--classes`, 4 by default), each item then taking its class's text vector — so the ratio
measures the loop's extra pieces, not a different number of prompts encoded. Same random-weight
architecture, batch and optimiser settings; the steps run interleaved (plain, full / full,
plain, …) after one warm-up step each, via benchmarks/_compare.py. Target: median ratio ≤ 1.10.

    python benchmarks/bench_train.py [--arch ViT-B-32] [--batch-size 16] [--steps 5] [--device auto]
    python benchmarks/bench_train.py --quick     # clipdesk-tiny, batch 8, 3 rounds: a smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from open_clip.loss import ClipLoss

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _compare import interleave  # noqa: E402

from clipdesk.core.models import load_model  # noqa: E402
from training.loop import (  # noqa: E402
    amp_context,
    batch_texts,
    clamp_logit_scale,
    contrastive_loss,
    lr_at,
    make_loss,
    param_groups,
)


def plain_step(model, optimizer, loss_fn, images, texts, inverse, device) -> None:
    """open_clip's step on the batch's unique prompts; each item takes its class's text vector."""
    with amp_context(device):
        image_features, text_features, logit_scale = model(images, texts)[:3]
        loss = loss_fn(image_features, text_features[inverse], logit_scale)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def full_step(model, optimizer, loss_fn, batch, group_tokens, device, step) -> None:
    texts, inverse, groups = batch_texts(batch, group_tokens)
    with amp_context(device):
        loss = contrastive_loss(model, loss_fn, batch["image"], texts, inverse, groups)
    loss.backward()
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, 1000, 1e-5, 10)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    clamp_logit_scale(model)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=None, help="default ViT-B-32 (quick: clipdesk-tiny)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 16 (quick: 8)")
    parser.add_argument("--classes", type=int, default=4, help="distinct class prompts in the batch")
    parser.add_argument("--steps", type=int, default=None, help="timed rounds, >= 3 (default 5, quick 3)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--quick", action="store_true", help="tiny model, small batch: a smoke run")
    args = parser.parse_args()
    arch = args.arch or ("clipdesk-tiny" if args.quick else "ViT-B-32")
    batch_size = args.batch_size or (8 if args.quick else 16)
    steps = args.steps or (3 if args.quick else 5)
    if args.threads:
        torch.set_num_threads(args.threads)

    plain_model = load_model(arch, "none", args.device)
    full_model = load_model(arch, "none", args.device)
    device = plain_model.device
    plain_model.model.train()
    full_model.model.train()
    size = plain_model.image_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, size, size, generator=generator).to(device)
    groups = torch.arange(batch_size) % args.classes
    group_tokens = plain_model.tokenizer([f"a photo of a class {i}." for i in range(args.classes)]).to(device)
    batch = {"image": images, "group": groups}
    texts, inverse, _ = batch_texts(batch, group_tokens)  # the same text-tower input for both legs

    plain_opt = torch.optim.AdamW(plain_model.model.parameters(), lr=1e-5, weight_decay=0.1)
    full_opt = torch.optim.AdamW(param_groups(full_model.model, 0.1), lr=1e-5)
    plain_loss, full_loss = ClipLoss(), make_loss()
    full_steps = [0]

    def timed(run) -> float:
        sync(device)
        start = time.perf_counter()
        run()
        sync(device)
        return time.perf_counter() - start

    def run_plain() -> float:
        return timed(lambda: plain_step(plain_model.model, plain_opt, plain_loss, images, texts, inverse, device))

    def run_full() -> float:
        full_steps[0] += 1
        return timed(lambda: full_step(full_model.model, full_opt, full_loss, batch, group_tokens, device,
                                       full_steps[0]))

    results = interleave({"plain open_clip step": run_plain, "full fine-tune step": run_full},
                         rounds=steps, warmup=1)
    print(f"device {device}, {arch}, batch {batch_size}, {args.classes} classes "
          f"({len(texts)} prompts through the text tower in both legs), {steps} timed rounds")
    print(results.table(base="plain open_clip step", title="step"))
    ratio = results.ratio("full fine-tune step", "plain open_clip step")[0]
    print(f"median ratio full/plain: {ratio:.3f}  ({'within' if ratio <= 1.10 else 'OVER'} the 1.10 target)")


if __name__ == "__main__":
    main()
