"""Makes the training and held-out text from Debian's bible-kjv package: one verse per line, references stripped.

Usage: python3 tools/train/corpus.py OUTDIR   (writes OUTDIR/kjv-train.txt and OUTDIR/kjv-heldout.txt)
The last 5% of the verses (in canonical order: the end of the New Testament) are held out.
"""
import os
import re
import subprocess
import sys

HELDOUT_FRACTION = 0.05


def verses():
    """All 31102 verses from Genesis 1:1 to Revelation 22:21, without their references."""
    out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
    lines = []
    for line in out.splitlines():
        m = re.match(r"^\S+?\d+:\d+ (.*)$", line)
        if not m:
            raise SystemExit(f"corpus: unexpected line from bible: {line[:60]!r}")
        text = " ".join(m.group(1).split())
        if text:
            lines.append(text)
    return lines


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: corpus.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    v = verses()
    n_held = int(round(len(v) * HELDOUT_FRACTION))
    train, held = v[:-n_held], v[-n_held:]
    for name, part in (("kjv-train.txt", train), ("kjv-heldout.txt", held)):
        with open(os.path.join(outdir, name), "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(part) + "\n")
    print(f"corpus: {len(v)} verses, {len(train)} train, {len(held)} held out "
          f"(from: {held[0][:50]!r})")


if __name__ == "__main__":
    main()
