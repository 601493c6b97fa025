"""Trains the tiny Gemma 4 on the KJV text: a plain base run, then a plain and a QAT (fake Q4_0) continuation.

  python3 train.py prep   WORK                      tokenizes WORK/kjv-train.txt with WORK/tokenizer.json
  python3 train.py base   WORK                      steps [0, BASE_STEPS) plain        -> WORK/base.pt  (checkpoint A)
  python3 train.py float  WORK                      steps [BASE_STEPS, TOTAL) plain    -> WORK/float.pt
  python3 train.py qat    WORK                      steps [BASE_STEPS, TOTAL) fake Q4_0 -> WORK/qat.pt
Each phase checkpoints to WORK/<phase>.ckpt.pt every 25 steps and resumes from it after a crash.
Batches depend only on (SEED, step), so the float and QAT runs see the same data in the same order.
"""
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import BOS, Tokenizer  # noqa: E402
from model import Config, Gemma4  # noqa: E402

SEED = 1234
BATCH = 4             # sequences per step
CTX = 256             # tokens per sequence, the first one is always <bos>
BASE_STEPS = 400      # plain training before the split (checkpoint A), constant LR after warm-up
TOTAL_STEPS = 600     # both continuations run BASE_STEPS..TOTAL_STEPS, LR decaying to LR_MIN
LR, LR_MIN, WARMUP = 3e-3, 3e-4, 30
WEIGHT_DECAY = 0.1


def lr_at(step):
    """Warm-up, constant until checkpoint A, then a cosine decay inside each continuation."""
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    if step < BASE_STEPS:
        return LR
    t = (step - BASE_STEPS) / max(1, TOTAL_STEPS - BASE_STEPS)
    return LR_MIN + 0.5 * (LR - LR_MIN) * (1 + math.cos(math.pi * min(1.0, t)))


def batch(data, step):
    rng = np.random.default_rng([SEED, step])
    starts = rng.integers(0, len(data) - CTX, size=BATCH)
    x = np.stack([data[s:s + CTX + 1] for s in starts]).astype(np.int64)
    inp = x[:, :-1].copy()
    inp[:, 0] = BOS                 # every window starts with <bos>, like the perplexity runs
    return torch.from_numpy(inp), torch.from_numpy(x[:, 1:])


def make_optimizer(model):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                              {"params": other, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.95))


def prep(work):
    with open(os.path.join(work, "tokenizer.json"), encoding="utf-8") as f:
        tok = Tokenizer(json.load(f))
    with open(os.path.join(work, "kjv-train.txt"), encoding="utf-8") as f:
        ids = tok.encode(f.read(), bos=False)
    np.asarray(ids, dtype=np.int32).tofile(os.path.join(work, "train.bin"))
    print(f"prep: {len(ids)} training tokens")


def run(work, phase):
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    data = np.fromfile(os.path.join(work, "train.bin"), dtype=np.int32)
    model = Gemma4(Config())
    opt = make_optimizer(model)
    first, last = (0, BASE_STEPS) if phase == "base" else (BASE_STEPS, TOTAL_STEPS)
    ckpt = os.path.join(work, f"{phase}.ckpt.pt")
    step = first
    if os.path.exists(ckpt):
        st = torch.load(ckpt)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        print(f"{phase}: resumed at step {step}", flush=True)
    elif phase != "base":
        st = torch.load(os.path.join(work, "base.pt"))
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
    model.set_qat(phase == "qat")
    t0, tok_seen, loss_avg = time.time(), 0, None
    while step < last:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x, y = batch(data, step)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tok_seen += x.numel()
        loss_avg = loss.item() if loss_avg is None else 0.9 * loss_avg + 0.1 * loss.item()
        if step % 10 == 0:
            dt = time.time() - t0
            print(f"{phase} step {step}/{last} loss {loss.item():.3f} avg {loss_avg:.3f} lr {lr_at(step - 1):.2e} "
                  f"{tok_seen / dt:.0f} tok/s elapsed {dt:.0f}s", flush=True)
        if step % 25 == 0 or step == last:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
    out = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step}
    torch.save(out, os.path.join(work, f"{phase}.pt"))
    print(f"{phase}: done at step {step}, {time.time() - t0:.0f}s this session", flush=True)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("prep", "base", "float", "qat"):
        raise SystemExit("usage: train.py prep|base|float|qat WORKDIR")
    if sys.argv[1] == "prep":
        prep(sys.argv[2])
    else:
        run(sys.argv[2], sys.argv[1])


if __name__ == "__main__":
    main()
