"""Held-out perplexity with the PyTorch model, windows as the llama.cpp peer scores them (second half of each).

Usage: python3 eval_ppl.py TOKENIZER.json TEXT CTX CKPT.pt[:q4] ...   (":q4" = weights through the Q4_0 round trip)
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe import BOS, Tokenizer  # noqa: E402
from model import Config, Gemma4  # noqa: E402


def main():
    if len(sys.argv) < 5:
        raise SystemExit("usage: eval_ppl.py TOKENIZER.json TEXT CTX CKPT.pt[:q4] ...")
    torch.set_num_threads(1)
    with open(sys.argv[1], encoding="utf-8") as f:
        tok = Tokenizer(json.load(f))
    with open(sys.argv[2], encoding="utf-8") as f:
        ids = tok.encode(f.read())
    n = int(sys.argv[3])
    wins = torch.tensor([ids[s:s + n] for s in range(0, len(ids) - n + 1, n)])
    targets = wins[:, n // 2 + 1:]
    wins[:, 0] = BOS
    for spec in sys.argv[4:]:
        path, q4 = (spec[:-3], True) if spec.endswith(":q4") else (spec, False)
        m = Gemma4(Config())
        m.load_state_dict(torch.load(path)["model"])
        m.set_qat(q4)
        nll = 0.0
        with torch.no_grad():
            for i in range(0, len(wins), 8):
                lg = m(wins[i:i + 8])[:, n // 2:n - 1]
                nll += F.cross_entropy(lg.reshape(-1, lg.shape[-1]), targets[i:i + 8].reshape(-1),
                                       reduction="sum").item()
        cnt = targets.numel()
        print(f"{spec}: ppl {math.exp(nll / cnt):.4f} over {cnt} tokens", flush=True)


if __name__ == "__main__":
    main()
