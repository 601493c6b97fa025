"""Byte-fallback BPE tokenizer in the Gemma 4 GGUF form: train it (deterministic), encode, decode.

Vocabulary layout mirrors the golden synthetic models (tokenizer.ggml.model "gemma4"):
  0 <pad>, 1 <eos>, 2 <bos>, 3 <unk>, 4 <mask>, 5 <|turn>, 6 <turn|>, 7..262 <0x00>..<0xFF>,
  263 "▁" (U+2581 stands for a space), printable ASCII, "\\n", then one token per merge in rank order.
Text is split only at newlines; merges never cross a space because every "▁" starts a word unit,
so llama.cpp's whole-line BPE gives the same ids as the per-word encoder here.

Usage: python3 tools/train/bpe.py TRAIN.txt OUT.json [VOCAB_SIZE=4096]
"""
import heapq
import json
import sys
from collections import Counter, defaultdict

SPACE = "\u2581"
SPECIALS = [("<pad>", 3), ("<eos>", 3), ("<bos>", 3), ("<unk>", 2), ("<mask>", 1),
            ("<|turn>", 3), ("<turn|>", 3)]
TYPE_NORMAL, TYPE_UNKNOWN, TYPE_CONTROL, TYPE_UNUSED, TYPE_BYTE = 1, 2, 3, 5, 6
BOS, EOS = 2, 1


def base_vocab(extra_chars=()):
    """Specials, byte tokens, the space mark, printable ASCII, newline, then any extra characters."""
    toks = [(t, ty) for t, ty in SPECIALS]
    toks += [(f"<0x{b:02X}>", TYPE_BYTE) for b in range(256)]
    chars = [SPACE] + [chr(c) for c in range(33, 127)] + ["\n"]
    chars += sorted(c for c in set(extra_chars) if c not in chars and c != " ")
    toks += [(c, TYPE_NORMAL) for c in chars]
    return toks


def units(line):
    """Word units of one newline-free line: the first word as is, every later one led by '▁'."""
    parts = line.split(" ")
    return [parts[0]] + [SPACE + p for p in parts[1:]] if parts[0] else [SPACE + p for p in parts[1:]]


def train(text, vocab_size):
    counts = Counter()
    for line in text.split("\n"):
        for u in units(line):
            if u:
                counts[u] += 1
    toks = base_vocab(c for u in counts for c in u)
    words = sorted(counts)                     # deterministic order
    freq = [counts[w] for w in words]
    syms = [list(w) for w in words]
    pair_count = defaultdict(int)
    where = defaultdict(set)
    for i, s in enumerate(syms):
        for a, b in zip(s, s[1:]):
            pair_count[(a, b)] += freq[i]
            where[(a, b)].add(i)
    merges = []
    n_merges = vocab_size - len(toks)
    while len(merges) < n_merges and pair_count:
        (a, b), c = max(pair_count.items(), key=lambda kv: (kv[1], kv[0]))
        if c < 2:
            break
        merges.append((a, b))
        ab = a + b
        for i in sorted(where.pop((a, b), ())):
            s, f = syms[i], freq[i]
            for p in zip(s, s[1:]):
                pair_count[p] -= f
                if pair_count[p] <= 0:
                    del pair_count[p]
            out, j = [], 0
            while j < len(s):
                if j + 1 < len(s) and s[j] == a and s[j + 1] == b:
                    out.append(ab)
                    j += 2
                else:
                    out.append(s[j])
                    j += 1
            syms[i] = out
            for p in zip(out, out[1:]):
                pair_count[p] += f
                where[p].add(i)
        pair_count.pop((a, b), None)
        if len(merges) % 500 == 0:
            print(f"bpe: {len(merges)} merges, last {ab!r} x{c}", flush=True)
    toks += [(a + b, TYPE_NORMAL) for a, b in merges]
    return {"tokens": [t for t, _ in toks], "types": [ty for _, ty in toks],
            "merges": [f"{a} {b}" for a, b in merges]}


class Tokenizer:
    """Encodes like llama.cpp's gemma4 BPE (lowest merge rank first, leftmost first, byte fallback)."""

    def __init__(self, vocab):
        self.tokens = vocab["tokens"]
        self.types = vocab["types"]
        self.id = {t: i for i, t in enumerate(self.tokens)}
        self.rank = {tuple(m.split(" ")): r for r, m in enumerate(vocab["merges"])}
        self.cache = {}

    def _bpe(self, word):
        syms = list(word)
        heap = [(self.rank[(syms[i], syms[i + 1])], i) for i in range(len(syms) - 1)
                if (syms[i], syms[i + 1]) in self.rank]
        heapq.heapify(heap)
        nxt = list(range(1, len(syms))) + [-1]
        prv = list(range(-1, len(syms) - 1))
        while heap:
            r, i = heapq.heappop(heap)
            j = nxt[i]
            if syms[i] is None or j < 0 or syms[j] is None or self.rank.get((syms[i], syms[j])) != r:
                continue
            syms[i] += syms[j]
            syms[j] = None
            nxt[i] = nxt[j]
            if nxt[j] >= 0:
                prv[nxt[j]] = i
            for a, b in ((prv[i], i), (i, nxt[i])):
                if a >= 0 and b >= 0 and (syms[a], syms[b]) in self.rank:
                    heapq.heappush(heap, (self.rank[(syms[a], syms[b])], a))
        out = []
        for s in syms:
            if s is None:
                continue
            if s in self.id:
                out.append(self.id[s])
            else:
                out += [self.id[f"<0x{b:02X}>"] for b in s.encode("utf-8")]
        return out

    def _unit(self, u):
        ids = self.cache.get(u)
        if ids is None:
            ids = self.cache[u] = self._bpe(u)
        return ids

    def encode(self, text, bos=True, special=False):
        """Token ids of text; with special, control-token texts such as <|turn> become those tokens."""
        ids = [BOS] if bos else []
        if special:
            ctl = sorted((t for t, ty in zip(self.tokens, self.types) if ty == TYPE_CONTROL), key=len, reverse=True)
            pos = 0
            while pos < len(text):
                hits = [(text.find(t, pos), -len(t), t) for t in ctl if text.find(t, pos) >= 0]
                if not hits:
                    return ids + self.encode(text[pos:], bos=False)
                at, _, t = min(hits)
                ids += self.encode(text[pos:at], bos=False) + [self.id[t]]
                pos = at + len(t)
            return ids
        pos = 0
        while pos < len(text):
            if text[pos] == "\n":
                end = pos
                while end < len(text) and text[end] == "\n":
                    end += 1
                run = text[pos:end]
                ids += [self.id[run]] if run in self.id else [self.id["\n"]] * len(run)
            else:
                end = text.find("\n", pos)
                end = len(text) if end < 0 else end
                for u in units(text[pos:end]):
                    ids += self._unit(u)
            pos = end
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            t, ty = self.tokens[i], self.types[i]
            if ty == TYPE_BYTE:
                out.append(int(t[3:5], 16))
            elif ty == TYPE_NORMAL:
                out += t.replace(SPACE, " ").encode("utf-8")
        return out.decode("utf-8", errors="replace")


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit("usage: bpe.py TRAIN.txt OUT.json [VOCAB_SIZE]")
    size = int(sys.argv[3]) if len(sys.argv) == 4 else 4096
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    vocab = train(text, size)
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=0)
    tok = Tokenizer(vocab)
    n = len(tok.encode(text, bos=False))
    print(f"bpe: {len(vocab['tokens'])} tokens, {len(vocab['merges'])} merges; "
          f"train text {len(text)} chars -> {n} tokens ({len(text) / n:.2f} chars/token)")


if __name__ == "__main__":
    main()
