"""Samples text from a training checkpoint with the PyTorch model (temperature + top-k, fixed seed).

Usage: python3 sample.py CKPT.pt TOKENIZER.json "prompt" [N_TOKENS=60] [qat]
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import Tokenizer  # noqa: E402
from model import Config, Gemma4  # noqa: E402


def main():
    if len(sys.argv) < 4:
        raise SystemExit('usage: sample.py CKPT.pt TOKENIZER.json "prompt" [N] [qat]')
    torch.set_num_threads(1)
    torch.manual_seed(7)
    with open(sys.argv[2], encoding="utf-8") as f:
        tok = Tokenizer(json.load(f))
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 60
    model = Gemma4(Config())
    model.load_state_dict(torch.load(sys.argv[1])["model"])
    model.set_qat(len(sys.argv) > 5 and sys.argv[5] == "qat")
    model.eval()
    ids = tok.encode(sys.argv[3])
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids[-model.c.ctx:]]))[0, -1] / 0.8
            v, i = torch.topk(logits, 40)
            ids.append(int(i[torch.multinomial(torch.softmax(v, -1), 1)]))
    print(tok.decode(ids))


if __name__ == "__main__":
    main()
