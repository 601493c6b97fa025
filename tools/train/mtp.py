"""The Gemma 4 MTP "assistant" drafter (llama.cpp arch `gemma4-assistant`) for the tiny KJV model, in PyTorch.

What the assistant computes (llama.cpp src/models/gemma4-assistant.cpp), for one draft row:
  x    = target.token_embd[tok] * sqrt(H_target)                  [Ht]  the TARGET's embedding of the last token
  xh   = concat(x, h)                                             [2Ht] h: the target's hidden state after its
                                                                        final output norm (or the assistant's h_next)
  a    = pre_proj @ xh                                            [E]   nextn.pre_projection
  then n layers of Gemma 4 blocks WITHOUT k/v projections: queries only, attending over the TARGET's KV cache
  (a full-attention assistant layer reads the target's last layer, a sliding one the target's last sliding
  layer), all draft rows of one step at the same position (the position of the last token)
  y    = output_norm(a)                                           [E]
  logits = token_embd_assistant @ y   (no softcap)                [V]
  h_next = post_proj @ y                                          [Ht]  nextn.post_projection, the h of the next draft

The target hands over, at position t: h_t (post output norm) and the K/V of its layers up to t; the assistant
gets the token t+1 and predicts token t+2 at rope position t+1, then chains its h_next with its own draft.
This file: the target loaded from its GGUF (Q4_0 dequantized), the target's features, the assistant module,
a KV-cached greedy decoder for the target and the GGUF export.
"""
import math
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf  # noqa: E402
from gguf import T_ARR, T_BOOL, T_F32, T_I32, T_STR, T_U32  # noqa: E402
from model import Config, Gemma4, Linear, apply_rope, fake_q4_0, rms_norm, rope_tables  # noqa: E402

ARCH = "gemma4-assistant"


# ---------------------------------------------------------------------------------------------------------
# the target, from its GGUF

def gguf_array(r, name):
    """Tensor `name` of reader r as float32 in torch layout (reversed ggml ne)."""
    t = r.tensors[name]
    n = int(np.prod(t["ne"]))
    raw = r.tensor_bytes(name)
    if t["type"] == gguf.GGML_F32:
        a = np.frombuffer(raw, dtype="<f4", count=n).copy()
    elif t["type"] == gguf.GGML_Q4_0:
        a = gguf.dequantize_q4_0(raw, n)
    else:
        raise ValueError(f"{name}: type {t['type']} not handled")
    return a.reshape(list(reversed(t["ne"])))


def load_target(path):
    """(Gemma4 with the file's weights as float32, the tokenizer vocab dict, the reader)."""
    r = gguf.Reader(path)
    c = Config()
    m = Gemma4(c)
    names = {"attn_norm": "attn_norm", "q.weight": "attn_q", "k.weight": "attn_k", "v.weight": "attn_v",
             "k_norm": "attn_k_norm", "q_norm": "attn_q_norm", "o.weight": "attn_output",
             "post_attn_norm": "post_attention_norm", "ffn_norm": "ffn_norm", "gate.weight": "ffn_gate",
             "up.weight": "ffn_up", "down.weight": "ffn_down", "post_ffw_norm": "post_ffw_norm",
             "out_scale": "layer_output_scale"}
    sd = {"embed": gguf_array(r, "token_embd.weight"), "out_norm": gguf_array(r, "output_norm.weight")}
    for i in range(c.n_layer):
        for tname, gname in names.items():
            sd[f"blocks.{i}.{tname}"] = gguf_array(r, f"blk.{i}.{gname}.weight")
    m.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()})
    for p in m.parameters():
        p.requires_grad_(False)
    vocab = {"tokens": r.kv["tokenizer.ggml.tokens"][1], "types": r.kv["tokenizer.ggml.token_type"][1],
             "merges": r.kv["tokenizer.ggml.merges"][1]}
    return m, vocab, r


def _block_qkv(blk, x, cos, sin):
    """q [B,nh,T,hd], k/v [B,nkv,T,hd] of block blk for normed input x (rope at the given tables)."""
    c = blk.c
    B, T, _ = x.shape
    q = blk.q(x).view(B, T, c.n_head, blk.hd).transpose(1, 2)
    k = blk.k(x).view(B, T, blk.nkv, blk.hd).transpose(1, 2)
    v = blk.v(x).view(B, T, blk.nkv, blk.hd).transpose(1, 2)
    q = apply_rope(rms_norm(q, blk.q_norm, c.eps), cos, sin)
    k = apply_rope(rms_norm(k, blk.k_norm, c.eps), cos, sin)
    v = rms_norm(v, None, c.eps)
    return q, k, v


def _block_rest(blk, h, q, k, v, mask):
    """The rest of Block.forward after q/k/v (k/v may be longer than q: a cache)."""
    c = blk.c
    B, _, T, _ = q.shape
    g = c.n_head // blk.nkv
    k = k.repeat_interleave(g, dim=1)
    v = v.repeat_interleave(g, dim=1)
    att = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)
    a = (att @ v).transpose(1, 2).reshape(B, T, c.n_head * blk.hd)
    h = h + rms_norm(blk.o(a), blk.post_attn_norm, c.eps)
    x = rms_norm(h, blk.ffn_norm, c.eps)
    f = blk.down(F.gelu(blk.gate(x), approximate="tanh") * blk.up(x))
    h = h + rms_norm(f, blk.post_ffw_norm, c.eps)
    return h * blk.out_scale


@torch.no_grad()
def target_features(m, ids):
    """For ids [B,T] from position 0: h [B,T,H] (after the output norm), per layer (k, v) [B,nkv,T,hd]
    (after k/v norms and rope, what the KV cache holds) and logits [B,T,V] (softcapped)."""
    c = m.c
    T = ids.shape[1]
    swa, full, m_swa, m_full = m._rope_mask(T, ids.device)
    h = F.embedding(ids, m.embed) * math.sqrt(c.hidden)
    kv = []
    for blk in m.blocks:
        cs, mask = (swa, m_swa) if blk.sliding else (full, m_full)
        x = rms_norm(h, blk.attn_norm, c.eps)
        q, k, v = _block_qkv(blk, x, cs[0], cs[1])
        kv.append((k, v))
        h = _block_rest(blk, h, q, k, v, mask)
    hn = rms_norm(h, m.out_norm, c.eps)
    logits = F.linear(hn, m.embed)
    return hn, kv, c.softcap * torch.tanh(logits / c.softcap)


class Cache:
    """Per-layer KV cache of the target for batched greedy decoding: k/v [B,nkv,L,hd] growing along L."""

    def __init__(self, m, max_len):
        c = m.c
        self.swa = rope_tables(max_len, c.hd_swa, c.theta_swa, c.hd_swa // 2)
        self.full = rope_tables(max_len, c.hd_full, c.theta_full, c.n_rot_pairs_full())
        self.kv = [None] * c.n_layer
        self.n = 0


@torch.no_grad()
def target_step(m, cache, ids):
    """Evaluates ids [B,n] at positions cache.n.. with the cache; returns (h [B,n,H], logits [B,n,V])."""
    c = m.c
    B, n = ids.shape
    p0 = cache.n
    qp = torch.arange(p0, p0 + n)[:, None]
    kp = torch.arange(0, p0 + n)[None, :]
    diff = qp - kp
    m_full = torch.where(diff >= 0, 0.0, float("-inf"))
    m_swa = torch.where((diff >= 0) & (diff < c.window), 0.0, float("-inf"))
    h = F.embedding(ids, m.embed) * math.sqrt(c.hidden)
    for i, blk in enumerate(m.blocks):
        cs, mask = (cache.swa, m_swa) if blk.sliding else (cache.full, m_full)
        x = rms_norm(h, blk.attn_norm, c.eps)
        q, k, v = _block_qkv(blk, x, cs[0][p0:p0 + n], cs[1][p0:p0 + n])
        if cache.kv[i] is not None:
            k = torch.cat([cache.kv[i][0], k], dim=2)
            v = torch.cat([cache.kv[i][1], v], dim=2)
        cache.kv[i] = (k, v)
        h = _block_rest(blk, h, q, k, v, mask)
    cache.n += n
    hn = rms_norm(h, m.out_norm, c.eps)
    logits = F.linear(hn, m.embed)
    return hn, c.softcap * torch.tanh(logits / c.softcap)


@torch.no_grad()
def greedy(m, prompts, n_new):
    """Greedy continuation of equal-length prompts [B,P] by n_new tokens -> [B, P+n_new]."""
    cache = Cache(m, prompts.shape[1] + n_new)
    _, lg = target_step(m, cache, prompts)
    out = [prompts]
    nxt = lg[:, -1].argmax(-1, keepdim=True)
    for _ in range(n_new - 1):
        out.append(nxt)
        _, lg = target_step(m, cache, nxt)
        nxt = lg[:, -1].argmax(-1, keepdim=True)
    out.append(nxt)
    return torch.cat(out, dim=1)


# ---------------------------------------------------------------------------------------------------------
# the assistant

@dataclass
class MtpConfig:
    vocab: int = 4096
    hidden: int = 128           # the assistant's width E (llama.cpp wants it != the target's 256)
    backbone: int = 256         # the target's width: h and the token embedding
    n_head: int = 4
    # One SLIDING layer (llama.cpp's gemma4-assistant asserts at least one sliding layer): it reads the KV of the
    # target's last sliding layer (layer 4: 2 KV heads of 64), keys p - kpos < window, NeoX RoPE theta 1e4 on
    # the whole head.
    n_kv: int = 2
    hd: int = 64
    ffn: int = 512
    theta: float = 1e4
    window: int = 128
    eps: float = 1e-6
    target_layer: int = 4


class Assistant(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        E, Ht = c.hidden, c.backbone
        self.embed = nn.Parameter(torch.randn(c.vocab, E) * 0.02)          # [V, E] output only (tied name)
        self.pre_proj = Linear(2 * Ht, E)                                   # [E, 2Ht]
        self.attn_norm = nn.Parameter(torch.ones(E))                        # [E]
        self.q = Linear(E, c.n_head * c.hd)                                 # [nh*hd, E]
        self.q_norm = nn.Parameter(torch.ones(c.hd))                        # [hd]
        self.o = Linear(c.n_head * c.hd, E)                                 # [E, nh*hd]
        self.post_attn_norm = nn.Parameter(torch.ones(E))                   # [E]
        self.ffn_norm = nn.Parameter(torch.ones(E))                         # [E]
        self.gate = Linear(E, c.ffn)                                        # [F, E]
        self.up = Linear(E, c.ffn)                                          # [F, E]
        self.down = Linear(c.ffn, E)                                        # [E, F]
        self.post_ffw_norm = nn.Parameter(torch.ones(E))                    # [E]
        self.out_scale = nn.Parameter(torch.ones(1))                        # [1]
        self.out_norm = nn.Parameter(torch.ones(E))                         # [E]
        self.post_proj = Linear(E, Ht)                                      # [Ht, E]
        self.qat = False

    def set_qat(self, on):
        self.qat = on
        for mod in self.modules():
            if isinstance(mod, Linear):
                mod.qat = on

    def rope(self, n_pos):
        c = self.c
        return rope_tables(n_pos, c.hd, c.theta, c.hd // 2)

    def forward(self, x_emb, h, k, v, cos, sin, mask):
        """x_emb [B,R,Ht] (target embedding, already * sqrt(Ht)), h [B,R,Ht], k/v [B,nkv,L,hd] the target's
        cache, cos/sin [R,hd] at each row's position, mask [R,L] (0 / -inf) -> (logits [B,R,V], h_next)."""
        c = self.c
        B, R, _ = h.shape
        a = self.pre_proj(torch.cat([x_emb, h], dim=-1))
        x = rms_norm(a, self.attn_norm, c.eps)
        q = self.q(x).view(B, R, c.n_head, c.hd).transpose(1, 2)
        q = apply_rope(rms_norm(q, self.q_norm, c.eps), cos, sin)
        g = c.n_head // c.n_kv
        kk = k.repeat_interleave(g, dim=1)
        vv = v.repeat_interleave(g, dim=1)
        att = torch.softmax(q @ kk.transpose(-1, -2) + mask, dim=-1)      # scale 1.0
        o = (att @ vv).transpose(1, 2).reshape(B, R, c.n_head * c.hd)
        a = a + rms_norm(self.o(o), self.post_attn_norm, c.eps)
        y = rms_norm(a, self.ffn_norm, c.eps)
        f = self.down(F.gelu(self.gate(y), approximate="tanh") * self.up(y))
        a = (a + rms_norm(f, self.post_ffw_norm, c.eps)) * self.out_scale
        y = rms_norm(a, self.out_norm, c.eps)
        E = fake_q4_0(self.embed) if self.qat else self.embed
        return F.linear(y, E), self.post_proj(y)


def draft_inputs(target, ids):
    """The target embedding rows the assistant takes for tokens ids: [..., Ht]."""
    return F.embedding(ids, target.embed) * math.sqrt(target.c.hidden)


# ---------------------------------------------------------------------------------------------------------
# GGUF export

def export(asst, target_reader, path, kind, name):
    """Writes the assistant as a gemma4-assistant GGUF: kind f32 or q4_0 (matrices Q4_0, the rest F32)."""
    c = asst.c
    p = ARCH + "."
    w = gguf.Writer()
    w.add("general.architecture", T_STR, ARCH)
    w.add("general.name", T_STR, name)
    w.add("general.alignment", T_U32, gguf.ALIGN)
    w.add(p + "context_length", T_U32, 1024)
    w.add(p + "embedding_length", T_U32, c.hidden)
    w.add(p + "embedding_length_out", T_U32, c.backbone)
    w.add(p + "block_count", T_U32, 1)
    w.add(p + "nextn_predict_layers", T_U32, 1)
    w.add(p + "feed_forward_length", T_U32, c.ffn)
    w.add(p + "attention.head_count", T_U32, c.n_head)
    w.add(p + "attention.head_count_kv", T_ARR, [c.n_kv], T_I32)
    w.add(p + "attention.key_length", T_U32, 128)          # the target's full-layer head (no full layer here)
    w.add(p + "attention.value_length", T_U32, 128)
    w.add(p + "attention.key_length_swa", T_U32, c.hd)
    w.add(p + "attention.value_length_swa", T_U32, c.hd)
    w.add(p + "attention.layer_norm_rms_epsilon", T_F32, c.eps)
    w.add(p + "attention.sliding_window", T_U32, c.window)
    w.add(p + "attention.sliding_window_pattern", T_ARR, [True], T_BOOL)
    w.add(p + "attention.shared_kv_layers", T_U32, 0)
    w.add(p + "embedding_length_per_layer_input", T_U32, 0)
    w.add(p + "rope.freq_base", T_F32, 1e6)
    w.add(p + "rope.freq_base_swa", T_F32, c.theta)
    w.add(p + "rope.dimension_count", T_U32, 128)
    w.add(p + "rope.dimension_count_swa", T_U32, c.hd)
    for key, (vt, v) in target_reader.kv.items():          # the target's tokenizer, unchanged
        if key.startswith("tokenizer."):
            et = None
            if vt == T_ARR:
                et = {str: T_STR, float: T_F32, int: T_I32}[type(v[0])]
            w.add(key, vt, v, et)
    sd = {k: t.detach().float().numpy() for k, t in asst.state_dict().items()}
    table = [("token_embd.weight", sd["embed"], True), ("output_norm.weight", sd["out_norm"], False),
             ("nextn.pre_projection.weight", sd["pre_proj.weight"], True),
             ("nextn.post_projection.weight", sd["post_proj.weight"], True)]
    for gname, tname, mat in (("attn_norm", "attn_norm", False), ("attn_q", "q.weight", True),
                              ("attn_q_norm", "q_norm", False), ("attn_output", "o.weight", True),
                              ("post_attention_norm", "post_attn_norm", False), ("ffn_norm", "ffn_norm", False),
                              ("ffn_gate", "gate.weight", True), ("ffn_up", "up.weight", True),
                              ("ffn_down", "down.weight", True), ("post_ffw_norm", "post_ffw_norm", False),
                              ("layer_output_scale", "out_scale", False)):
        table.append((f"blk.0.{gname}.weight", sd[tname], mat))
    for gname, a, mat in table:
        a = np.ascontiguousarray(a, dtype=np.float32)
        ne = list(reversed(a.shape))
        if mat and kind == "q4_0":
            w.add_tensor(gname, ne, gguf.GGML_Q4_0, gguf.quantize_q4_0(a))
        else:
            w.add_tensor(gname, ne, gguf.GGML_F32, a.tobytes())
    w.write(path)
    print(f"export: {path} ({kind}, {os.path.getsize(path)} bytes)", flush=True)
