"""Checks exported GGUFs against llama.cpp (the peer in /work/shared/tools): tokenizer, logits, greedy text.

Usage: python3 check_llamacpp.py WORKDIR GGUF [CKPT.pt [qat]]
  - tokenizes the held-out text (in 300-line chunks) and odd strings with llama.cpp and with bpe.Tokenizer
  - with CKPT: compares llama.cpp's logits on 200 held-out tokens with the PyTorch model's
  - greedy-decodes 40 tokens after "And God said" with llama.cpp (one teacher-forced call per token)
Needs: sh /work/shared/tools/setup_peer.sh (PEER_DIR, default /tmp/nibble-peer).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import Tokenizer  # noqa: E402

PEER_DIR = os.environ.get("PEER_DIR", "/tmp/nibble-peer")
ENV = dict(os.environ, PEER_NGL="0", PEER_BACKENDS=f"{PEER_DIR}/vk/package/bins/linux-x64-vulkan")
HERE = os.path.dirname(os.path.abspath(__file__))


def peer(*args):
    r = subprocess.run([f"{PEER_DIR}/peer_vk", *args], env=ENV, check=True, capture_output=True, text=True)
    return r.stdout


def peer_logits(gguf_path, ids):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "l.f32")
        peer(gguf_path, "logits", out, *map(str, ids))
        return np.fromfile(out, dtype=np.float32).reshape(len(ids), -1)


def check_tokenizer(tok, gguf_path, heldout):
    lines = heldout.split("\n")
    same = total = n = 0
    for i in range(0, len(lines), 300):
        chunk = "\n".join(lines[i:i + 300])
        a = [int(x) for x in peer(gguf_path, "tokenize", chunk).split()]
        same += a == tok.encode(chunk)
        total += 1
        n += len(a)
    odd = ["  two  spaces", " lead", "trail ", "caf\u00e9 \u65e5\u672c", "a\n\nb\n\n\nc", "LORD, LORD!",
           "<|turn>user\nHello<turn|>\n"]
    odd_same = sum([int(x) for x in peer(gguf_path, "tokenize", s).split()] == tok.encode(s, special=True)
                   for s in odd)
    print(f"tokenizer: {same}/{total} held-out chunks identical ({n} tokens), {odd_same}/{len(odd)} odd strings")


def check_logits(ckpt, qat, gguf_path, tok, heldout):
    import torch
    from model import Config, Gemma4
    torch.set_num_threads(1)
    ids = tok.encode(heldout[:3000])[:200]
    m = Gemma4(Config())
    m.load_state_dict(torch.load(ckpt)["model"])
    m.set_qat(qat)
    with torch.no_grad():
        ref = m(torch.tensor([ids]))[0].numpy()
    lc = peer_logits(gguf_path, ids)
    d = np.abs(lc - ref)
    print(f"logits vs PyTorch ({'fake-Q4_0' if qat else 'float'}): std {ref.std():.3f}, mean abs diff "
          f"{d.mean():.4f}, max {d.max():.4f}, top-1 agreement {(lc.argmax(1) == ref.argmax(1)).mean():.3f}")


def greedy(gguf_path, tok, prompt, n):
    ids = tok.encode(prompt)
    for _ in range(n):
        ids.append(int(peer_logits(gguf_path, ids)[-1].argmax()))
    print(f"llama.cpp greedy: {tok.decode(ids)!r}")


def main():
    if len(sys.argv) < 3:
        raise SystemExit("usage: check_llamacpp.py WORKDIR GGUF [CKPT.pt [qat]]")
    work, gguf_path = sys.argv[1], sys.argv[2]
    with open(os.path.join(work, "tokenizer.json"), encoding="utf-8") as f:
        tok = Tokenizer(json.load(f))
    with open(os.path.join(HERE, "..", "..", "models", "kjv-heldout.txt"), encoding="utf-8") as f:
        heldout = f.read()
    check_tokenizer(tok, gguf_path, heldout)
    if len(sys.argv) > 3:
        check_logits(sys.argv[3], len(sys.argv) > 4 and sys.argv[4] == "qat", gguf_path, tok, heldout)
    greedy(gguf_path, tok, "And God said", 40)


if __name__ == "__main__":
    main()
