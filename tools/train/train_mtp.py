"""Trains the MTP assistant (tools/train/mtp.py) of the default KJV model, measures its held-out acceptance, exports it.

  python3 train_mtp.py gen    WORK TARGET.gguf      greedy continuations of the target -> WORK/mtp-gen.pt
  python3 train_mtp.py train  WORK TARGET.gguf      the assistant, target frozen       -> WORK/mtp.pt
  python3 train_mtp.py eval   WORK TARGET.gguf [CKPT]  held-out acceptance (models/kjv-heldout.txt)
  python3 train_mtp.py export WORK TARGET.gguf OUT.gguf [f32|q4_0]
WORK must hold kjv-train.txt (tools/train/corpus.py WORK); the tokenizer comes from TARGET.gguf.

Method: the target is frozen (its GGUF weights, Q4_0 dequantized: the deployed model). Every step takes
BATCH_TEXT windows of KJV training text and BATCH_GEN of the target's own greedy continuations (what a greedy
speculative run verifies), runs the target over them for h (after its output norm), its last layer's K/V and
its logits, and trains the assistant on every position t: from (h_t, token t+1) predict the target's choice
at t+1 (token t+2), then chained: from (its own h_next, token t+2) the target's choice at t+2, and so on for
CHAIN steps, each step attending over the target's KV up to t (its last sliding layer, window 128) at rope
position t+1, as llama.cpp drafts.
Loss per step: cross entropy to the target's argmax (what greedy verification accepts) plus cross entropy
to the target's softmax (distillation, for sampled decoding).
"""
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mtp  # noqa: E402
from bpe import BOS, Tokenizer  # noqa: E402

SEED = 4321
CTX = 256
BATCH_TEXT, BATCH_GEN = 4, 4
CHAIN = 3                       # unrolled draft steps
STEPS = 360
QAT_FROM = 240                  # fake Q4_0 from this step on
LR, LR_MIN, WARMUP = 3e-3, 2e-4, 30
WEIGHT_DECAY = 0.1
GEN_SEQS, GEN_BATCH = 384, 64   # greedy continuations made by `gen`
EVAL_PROMPTS, EVAL_P, EVAL_N = 32, 64, 192


def lr_at(step):
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    t = (step - WARMUP) / max(1, STEPS - WARMUP)
    return LR_MIN + 0.5 * (LR - LR_MIN) * (1 + math.cos(math.pi * min(1.0, t)))


def text_ids(work, tok):
    cache = os.path.join(work, "mtp-train.bin")
    if not os.path.exists(cache):
        with open(os.path.join(work, "kjv-train.txt"), encoding="utf-8") as f:
            np.asarray(tok.encode(f.read(), bos=False), dtype=np.int32).tofile(cache)
    return np.fromfile(cache, dtype=np.int32)


def gen(work, target, data):
    """GEN_SEQS greedy continuations to CTX tokens of <bos> + training-text prompts of 16..96 tokens."""
    rng = np.random.default_rng([SEED, 7])
    out = []
    t0 = time.time()
    for b in range(GEN_SEQS // GEN_BATCH):
        p = int(rng.integers(16, 97))
        starts = rng.integers(0, len(data) - p, size=GEN_BATCH)
        pr = np.stack([np.concatenate([[BOS], data[s:s + p - 1]]) for s in starts]).astype(np.int64)
        out.append(mtp.greedy(target, torch.from_numpy(pr), CTX - p))
        print(f"gen: {len(out) * GEN_BATCH}/{GEN_SEQS} (prompt {p}) {time.time() - t0:.0f}s", flush=True)
    torch.save(torch.cat(out), os.path.join(work, "mtp-gen.pt"))


def batch(data, gen_seqs, step):
    rng = np.random.default_rng([SEED, step])
    starts = rng.integers(0, len(data) - CTX, size=BATCH_TEXT)
    x = np.stack([data[s:s + CTX] for s in starts]).astype(np.int64)
    x[:, 0] = BOS
    g = gen_seqs[torch.from_numpy(rng.integers(0, len(gen_seqs), size=BATCH_GEN))]
    return torch.cat([torch.from_numpy(x), g])


def draft_mask(T, window):
    """[T,T]: row t (drafting at position t+1) sees the target's keys kpos <= t with (t+1) - kpos < window."""
    p = torch.arange(T)
    d = p[:, None] + 1 - p[None, :]
    return torch.where((d >= 1) & (d < window), 0.0, float("-inf"))


def chain_losses(asst, target, ids, chain=CHAIN):
    """Per draft step (hard CE, soft CE, top-1 agreement) over the valid rows of ids [B,T]."""
    B, T = ids.shape
    h, kv, lg = mtp.target_features(target, ids)
    k, v = kv[asst.c.target_layer]
    arg = lg.argmax(-1)                                   # [B,T] the target's choice after position t
    logp = F.log_softmax(lg, dim=-1)
    cos, sin = asst.rope(T + 1)
    cos, sin = cos[1:], sin[1:]                           # row t at position t+1
    mask = draft_mask(T, asst.c.window)
    pad = torch.zeros(B, chain, dtype=ids.dtype)
    ids_p = torch.cat([ids, pad], dim=1)
    out = []
    hin = h
    for j in range(1, chain + 1):
        x = mtp.draft_inputs(target, ids_p[:, j:j + T])   # token t+j
        la, hin = asst(x, hin, k, v, cos, sin, mask)
        n = T - j                                         # rows t = 0..T-1-j have a label at t+j
        la = la[:, :n].reshape(-1, la.shape[-1])
        lsm = F.log_softmax(la, dim=-1)
        hard = F.nll_loss(lsm, arg[:, j:j + n].reshape(-1))
        soft = -(logp[:, j:j + n].reshape(-1, lsm.shape[-1]).exp() * lsm).sum(-1).mean()
        agree = (la.argmax(-1) == arg[:, j:j + n].reshape(-1)).float().mean()
        out.append((hard, soft, agree))
    return out


def load_asst(path):
    a = mtp.Assistant(mtp.MtpConfig())
    st = torch.load(path)
    a.load_state_dict(st["model"])
    a.set_qat(st.get("qat", False))
    return a


def train(work, target, data):
    torch.manual_seed(SEED)
    gen_seqs = torch.load(os.path.join(work, "mtp-gen.pt"))
    asst = mtp.Assistant(mtp.MtpConfig())
    decay = [p for p in asst.parameters() if p.dim() >= 2]
    other = [p for p in asst.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": other, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.95))
    ckpt = os.path.join(work, "mtp.ckpt.pt")
    step = 0
    if os.path.exists(ckpt):
        st = torch.load(ckpt)
        asst.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        print(f"train: resumed at step {step}", flush=True)
    t0, avg = time.time(), None
    while step < STEPS:
        asst.set_qat(step >= QAT_FROM)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        res = chain_losses(asst, target, batch(data, gen_seqs, step))
        loss = sum(hd + sf for hd, sf, _ in res) / len(res)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(asst.parameters(), 1.0)
        opt.step()
        step += 1
        cur = [loss.item()] + [a.item() for _, _, a in res]
        avg = cur if avg is None else [0.9 * a + 0.1 * c for a, c in zip(avg, cur)]
        if step % 10 == 0:
            print(f"train step {step}/{STEPS} loss {cur[0]:.3f} avg {avg[0]:.3f} top-1 agreement by step "
                  + " ".join(f"{a:.3f}" for a in avg[1:]) + f" lr {lr_at(step - 1):.2e} qat {int(asst.qat)} "
                  f"elapsed {time.time() - t0:.0f}s", flush=True)
        if step % 50 == 0 or step == STEPS:
            torch.save({"model": asst.state_dict(), "opt": opt.state_dict(), "step": step}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
    torch.save({"model": asst.state_dict(), "step": step, "qat": asst.qat}, os.path.join(work, "mtp.pt"))
    print(f"train: done at step {step}, {time.time() - t0:.0f}s this session", flush=True)


@torch.no_grad()
def drafts(asst, target, seq, kmax):
    """For a sequence [1,N]: the assistant's greedy chain of kmax drafts from every base t -> [N, kmax]
    (row t drafts tokens t+2.., from h_t and token t+1; rows t >= N-1 are junk)."""
    N = seq.shape[1]
    h, kv, _ = mtp.target_features(target, seq)
    k, v = kv[asst.c.target_layer]
    cos, sin = asst.rope(N + 1)
    mask = draft_mask(N, asst.c.window)
    tok = torch.cat([seq[:, 1:], torch.zeros(1, 1, dtype=seq.dtype)], dim=1)
    out = []
    hin = h
    for _ in range(kmax):
        la, hin = asst(mtp.draft_inputs(target, tok), hin, k, v, cos[1:], sin[1:], mask)
        tok = la.argmax(-1)
        out.append(tok[0])
    return torch.stack(out, dim=1)


def simulate(d, seq, P, k):
    """Greedy speculative decoding of seq after its prompt of P with k drafts a step (drafts d from `drafts`):
    (verification steps, drafted, accepted, tokens made)."""
    N = seq.shape[1]
    s = seq[0]
    t = P - 1            # base: the target has evaluated 0..t, token t+1 is sampled
    steps = drafted = accepted = made = 0
    made = 1             # token P comes from the prompt's logits
    while t + 1 < N - 1:
        kk = min(k, N - 2 - t)
        a = 0
        while a < kk and int(d[t, a]) == int(s[t + 2 + a]):
            a += 1
        steps += 1
        drafted += kk
        accepted += a
        made += a + 1
        t += a + 1
    return steps, drafted, accepted, made


def evaluate(work, target, asst, tok):
    torch.manual_seed(SEED)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "kjv-heldout.txt"),
              encoding="utf-8") as f:
        ids = tok.encode(f.read())
    # teacher-forced agreement with the target's argmax on held-out text (windows of CTX, <bos> first)
    wins = torch.tensor([ids[s:s + CTX] for s in range(0, len(ids) - CTX + 1, CTX)])
    wins[:, 0] = BOS
    tot = None
    with torch.no_grad():
        for i in range(0, len(wins), 16):
            r = [a.item() * len(wins[i:i + 16]) for _, _, a in chain_losses(asst, target, wins[i:i + 16], 4)]
            tot = r if tot is None else [x + y for x, y in zip(tot, r)]
    print("held-out text, teacher forced, agreement with the target's argmax by draft step 1..4: "
          + " ".join(f"{x / len(wins):.3f}" for x in tot), flush=True)
    # greedy generation from held-out prompts, speculative decoding simulated with k drafts a step
    step = (len(ids) - EVAL_P) // EVAL_PROMPTS
    prompts = torch.tensor([[BOS] + ids[1 + i * step:i * step + EVAL_P] for i in range(EVAL_PROMPTS)])
    seqs = mtp.greedy(target, prompts, EVAL_N)
    ks = (1, 2, 3, 4, 6)
    d = [drafts(asst, target, seqs[i:i + 1], max(ks)) for i in range(EVAL_PROMPTS)]   # k drafts: a prefix
    for k in ks:
        tot = [0, 0, 0, 0]
        for i in range(EVAL_PROMPTS):
            tot = [a + b for a, b in zip(tot, simulate(d[i], seqs[i:i + 1], EVAL_P, k))]
        steps, drafted, acc, made = tot
        print(f"greedy from {EVAL_PROMPTS} held-out prompts of {EVAL_P} tokens, {EVAL_N} new: k={k} acceptance "
              f"{acc / drafted:.3f} ({acc}/{drafted}), tokens per verification {made / steps:.2f}", flush=True)


def main():
    cmds = ("gen", "train", "eval", "export")
    if len(sys.argv) < 4 or sys.argv[1] not in cmds:
        raise SystemExit("usage: train_mtp.py gen|train|eval|export WORK TARGET.gguf [...]")
    torch.set_num_threads(1)
    cmd, work, tpath = sys.argv[1:4]
    target, vocab, reader = mtp.load_target(tpath)
    tok = Tokenizer(vocab)
    if cmd == "gen":
        gen(work, target, text_ids(work, tok))
    elif cmd == "train":
        train(work, target, text_ids(work, tok))
    elif cmd == "eval":
        evaluate(work, target, load_asst(sys.argv[4] if len(sys.argv) > 4 else os.path.join(work, "mtp.pt")), tok)
    else:
        kind = sys.argv[5] if len(sys.argv) > 5 else "q4_0"
        mtp.export(load_asst(os.path.join(work, "mtp.pt")), reader, sys.argv[4], kind, "nibble-kjv-mtp")


if __name__ == "__main__":
    main()
