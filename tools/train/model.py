"""A tiny Gemma 4 text model in PyTorch (docs/gemma4.md §1.3-1.4), with optional fake Q4_0 weights for QAT."""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab: int = 4096
    hidden: int = 256
    n_layer: int = 6
    n_head: int = 4
    n_kv_swa: int = 2            # KV heads on sliding layers
    n_kv_full: int = 1           # KV heads on full-attention layers
    hd_swa: int = 64             # head dim, sliding layers
    hd_full: int = 128           # head dim, full layers
    ffn: int = 512
    window: int = 128            # sliding window (keys with q_pos - k_pos < window)
    ctx: int = 256               # training context
    theta_swa: float = 1e4
    theta_full: float = 1e6
    rope_frac_full: float = 0.25  # proportional RoPE: first quarter of the pairs rotate
    eps: float = 1e-6
    softcap: float = 30.0
    sliding: list = field(default_factory=lambda: [True, True, True, True, True, False])

    def n_rot_pairs_full(self):
        return int(self.rope_frac_full * self.hd_full / 2)


def fake_q4_0(w):
    """ggml reference Q4_0 round trip of w (blocks of 32 along the last dim), straight-through gradient."""
    shape = w.shape
    b = w.reshape(-1, 32)
    idx = b.abs().argmax(dim=1, keepdim=True)
    mx = b.gather(1, idx)
    d = mx / -8.0
    inv = torch.where(d != 0, 1.0 / torch.where(d != 0, d, torch.ones_like(d)), torch.zeros_like(d))
    q = torch.clamp(torch.floor(b * inv + 8.5), max=15.0)
    deq = ((q - 8.0) * d.half().float()).reshape(shape)
    return w + (deq - w).detach()


def rms_norm(x, w, eps):
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x * w if w is not None else x


class Linear(nn.Module):
    """Bias-free linear layer whose weight [out, in] can be fake-quantized to Q4_0."""

    def __init__(self, n_in, n_out):
        super().__init__()
        assert n_in % 32 == 0
        self.weight = nn.Parameter(torch.randn(n_out, n_in) * (1.0 / math.sqrt(n_in)))
        self.qat = False

    def forward(self, x):
        return F.linear(x, fake_q4_0(self.weight) if self.qat else self.weight)


def rope_tables(n_pos, hd, theta, n_rot_pairs):
    """cos/sin [n_pos, hd] for NeoX pairing (i, i+hd/2); pairs >= n_rot_pairs stay unrotated."""
    half = hd // 2
    i = torch.arange(half, dtype=torch.float64)
    inv = theta ** (-2.0 * i / hd)
    inv[n_rot_pairs:] = 0.0
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=1)
    return ang.cos().float(), ang.sin().float()


def apply_rope(x, cos, sin):
    """x: [B, heads, T, hd]."""
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


class Block(nn.Module):
    def __init__(self, c, sliding):
        super().__init__()
        self.c, self.sliding = c, sliding
        self.hd = c.hd_swa if sliding else c.hd_full
        self.nkv = c.n_kv_swa if sliding else c.n_kv_full
        H = c.hidden
        self.attn_norm = nn.Parameter(torch.ones(H))            # [H]
        self.q = Linear(H, c.n_head * self.hd)                   # [nh*hd, H]
        self.k = Linear(H, self.nkv * self.hd)                   # [nkv*hd, H]
        self.v = Linear(H, self.nkv * self.hd)                   # [nkv*hd, H]
        self.o = Linear(c.n_head * self.hd, H)                   # [H, nh*hd]
        self.q_norm = nn.Parameter(torch.ones(self.hd))          # [hd]
        self.k_norm = nn.Parameter(torch.ones(self.hd))          # [hd]
        self.post_attn_norm = nn.Parameter(torch.ones(H))        # [H]
        self.ffn_norm = nn.Parameter(torch.ones(H))              # [H]
        self.gate = Linear(H, c.ffn)                             # [F, H]
        self.up = Linear(H, c.ffn)                               # [F, H]
        self.down = Linear(c.ffn, H)                             # [H, F]
        self.post_ffw_norm = nn.Parameter(torch.ones(H))         # [H]
        self.out_scale = nn.Parameter(torch.ones(1))             # [1] layer_output_scale

    def forward(self, h, cos, sin, mask):
        c = self.c
        B, T, _ = h.shape
        x = rms_norm(h, self.attn_norm, c.eps)
        q = self.q(x).view(B, T, c.n_head, self.hd).transpose(1, 2)
        k = self.k(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = apply_rope(rms_norm(q, self.q_norm, c.eps), cos, sin)
        k = apply_rope(rms_norm(k, self.k_norm, c.eps), cos, sin)
        v = rms_norm(v, None, c.eps)
        g = c.n_head // self.nkv
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)   # scale 1.0
        a = (att @ v).transpose(1, 2).reshape(B, T, c.n_head * self.hd)
        h = h + rms_norm(self.o(a), self.post_attn_norm, c.eps)
        f = self.down(F.gelu(self.gate(rms_norm(h, self.ffn_norm, c.eps)), approximate="tanh")
                      * self.up(rms_norm(h, self.ffn_norm, c.eps)))
        h = h + rms_norm(f, self.post_ffw_norm, c.eps)
        return h * self.out_scale


class Gemma4(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = nn.Parameter(torch.randn(c.vocab, c.hidden) * 0.02)   # [vocab, H], tied output
        self.blocks = nn.ModuleList(Block(c, s) for s in c.sliding)
        self.out_norm = nn.Parameter(torch.ones(c.hidden))                  # [H]
        self.qat = False
        self._tables = {}

    def set_qat(self, on):
        self.qat = on
        for m in self.modules():
            if isinstance(m, Linear):
                m.qat = on

    def _rope_mask(self, T, device):
        if T not in self._tables:
            c = self.c
            swa = rope_tables(T, c.hd_swa, c.theta_swa, c.hd_swa // 2)
            full = rope_tables(T, c.hd_full, c.theta_full, c.n_rot_pairs_full())
            p = torch.arange(T)
            diff = p[:, None] - p[None, :]
            causal = torch.where(diff >= 0, 0.0, float("-inf"))
            window = torch.where((diff >= 0) & (diff < c.window), 0.0, float("-inf"))
            self._tables[T] = (swa, full, window, causal)
        return self._tables[T]

    def forward(self, ids):
        c = self.c
        T = ids.shape[1]
        swa, full, m_swa, m_full = self._rope_mask(T, ids.device)
        E = fake_q4_0(self.embed) if self.qat else self.embed
        h = F.embedding(ids, E) * math.sqrt(c.hidden)
        for blk in self.blocks:
            cs, mask = (swa, m_swa) if blk.sliding else (full, m_full)
            h = blk(h, cs[0], cs[1], mask)
        logits = F.linear(rms_norm(h, self.out_norm, c.eps), E)
        return c.softcap * torch.tanh(logits / c.softcap)
