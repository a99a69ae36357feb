"""One `full` fine-tune step vs a plain open_clip training step on the same batch.

Plain: model(images, texts) + open_clip ClipLoss + backward + AdamW step (open_clip_train's step).
Full:  the training.loop pieces — unique class prompts per batch, same-class masking
       (GroupedClipLoss), no-decay groups, scheduled lr, logit_scale clamp.
Both use the same random-weight model architecture, batch and optimiser settings; steps are
interleaved so machine noise hits both alike. Target: ratio within 1.10.

    python benchmarks/bench_train.py [--arch ViT-B-32] [--batch-size 16] [--steps 5] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from open_clip.loss import ClipLoss

from clipdesk.core.models import load_model
from training.loop import (
    amp_context,
    batch_texts,
    clamp_logit_scale,
    contrastive_loss,
    lr_at,
    make_loss,
    param_groups,
)


def plain_step(model, optimizer, loss_fn, images, texts, device) -> None:
    with amp_context(device):
        image_features, text_features, logit_scale = model(images, texts)[:3]
        loss = loss_fn(image_features, text_features, logit_scale)
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
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--classes", type=int, default=4, help="distinct class prompts in the batch")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    plain_model = load_model(args.arch, "none", args.device)
    full_model = load_model(args.arch, "none", args.device)
    device = plain_model.device
    plain_model.model.train()
    full_model.model.train()
    size = plain_model.image_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, size, size, generator=generator).to(device)
    groups = torch.arange(args.batch_size) % args.classes
    group_tokens = plain_model.tokenizer([f"a photo of a class {i}." for i in range(args.classes)]).to(device)
    texts = group_tokens[groups]  # the plain step sees every (repeated) prompt, as open_clip would
    batch = {"image": images, "group": groups}

    plain_opt = torch.optim.AdamW(plain_model.model.parameters(), lr=1e-5, weight_decay=0.1)
    full_opt = torch.optim.AdamW(param_groups(full_model.model, 0.1), lr=1e-5)
    plain_loss, full_loss = ClipLoss(), make_loss()

    def timed(run) -> float:
        sync(device)
        start = time.perf_counter()
        run()
        sync(device)
        return time.perf_counter() - start

    plain_times, full_times = [], []
    for step in range(args.steps + 1):  # the first of each is a warm-up
        def run_plain():
            plain_step(plain_model.model, plain_opt, plain_loss, images, texts, device)

        def run_full(step=step):
            full_step(full_model.model, full_opt, full_loss, batch, group_tokens, device, step)

        # Alternate which goes first, so neither always runs on a warmer cache.
        first, second = (run_plain, run_full) if step % 2 else (run_full, run_plain)
        a, b = timed(first), timed(second)
        if step:
            plain_times.append(a if first is run_plain else b)
            full_times.append(b if first is run_plain else a)
    plain, full = statistics.median(plain_times), statistics.median(full_times)
    print(f"device {device}, {args.arch}, batch {args.batch_size}, {args.classes} classes, "
          f"{args.steps} timed steps each")
    print(f"plain open_clip step: {plain * 1000:8.1f} ms (median)")
    print(f"full fine-tune step:  {full * 1000:8.1f} ms (median)")
    ratio = full / plain
    print(f"ratio full/plain: {ratio:.3f}  ({'within' if ratio <= 1.10 else 'OVER'} the 1.10 target)")


if __name__ == "__main__":
    main()
