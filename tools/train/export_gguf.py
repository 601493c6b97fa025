"""Writes a trained checkpoint as a gemma4 GGUF (keys and tensor names as llama.cpp's loader reads them).

Usage: python3 export_gguf.py CKPT.pt TOKENIZER.json OUT.gguf f32|q4_0 [NAME]
  f32  : every tensor F32 (the float model)
  q4_0 : matrices (attention, FFN, token_embd) in ggml reference Q4_0; norms, rope_freqs, scales F32
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf  # noqa: E402
from gguf import T_ARR, T_BOOL, T_F32, T_I32, T_STR, T_U32  # noqa: E402
from model import Config  # noqa: E402


def metadata(w, c, vocab, name):
    p = "gemma4."
    w.add("general.architecture", T_STR, "gemma4")
    w.add("general.name", T_STR, name)
    w.add("general.alignment", T_U32, gguf.ALIGN)
    w.add(p + "context_length", T_U32, 1024)
    w.add(p + "embedding_length", T_U32, c.hidden)
    w.add(p + "block_count", T_U32, c.n_layer)
    w.add(p + "feed_forward_length", T_U32, c.ffn)
    w.add(p + "attention.head_count", T_U32, c.n_head)
    w.add(p + "attention.head_count_kv", T_ARR, [c.n_kv_swa if s else c.n_kv_full for s in c.sliding], T_I32)
    w.add(p + "attention.key_length", T_U32, c.hd_full)
    w.add(p + "attention.value_length", T_U32, c.hd_full)
    w.add(p + "attention.key_length_swa", T_U32, c.hd_swa)
    w.add(p + "attention.value_length_swa", T_U32, c.hd_swa)
    w.add(p + "attention.layer_norm_rms_epsilon", T_F32, c.eps)
    w.add(p + "attention.sliding_window", T_U32, c.window)
    w.add(p + "attention.sliding_window_pattern", T_ARR, [bool(s) for s in c.sliding], T_BOOL)
    w.add(p + "attention.shared_kv_layers", T_U32, 0)
    w.add(p + "embedding_length_per_layer_input", T_U32, 0)
    w.add(p + "rope.freq_base", T_F32, c.theta_full)
    w.add(p + "rope.freq_base_swa", T_F32, c.theta_swa)
    w.add(p + "rope.dimension_count", T_U32, c.hd_full)
    w.add(p + "rope.dimension_count_swa", T_U32, c.hd_swa)
    w.add(p + "final_logit_softcapping", T_F32, c.softcap)
    w.add("tokenizer.ggml.model", T_STR, "gemma4")
    w.add("tokenizer.ggml.pre", T_STR, "gemma4")
    w.add("tokenizer.ggml.tokens", T_ARR, vocab["tokens"], T_STR)
    w.add("tokenizer.ggml.scores", T_ARR, [0.0] * len(vocab["tokens"]), T_F32)
    w.add("tokenizer.ggml.token_type", T_ARR, vocab["types"], T_I32)
    w.add("tokenizer.ggml.merges", T_ARR, vocab["merges"], T_STR)
    w.add("tokenizer.ggml.bos_token_id", T_U32, 2)
    w.add("tokenizer.ggml.eos_token_id", T_U32, 1)
    w.add("tokenizer.ggml.unknown_token_id", T_U32, 3)
    w.add("tokenizer.ggml.padding_token_id", T_U32, 0)
    w.add("tokenizer.ggml.add_bos_token", T_BOOL, True)
    w.add("tokenizer.ggml.add_space_prefix", T_BOOL, False)


def tensors(sd, c):
    """(gguf name, numpy array in torch layout [out, in], is_matrix) in the golden files' order."""
    f = lambda k: sd[k].detach().float().numpy()  # noqa: E731
    k_rot = c.n_rot_pairs_full()
    rope = np.array([1.0] * k_rot + [1e30] * (c.hd_full // 2 - k_rot), dtype=np.float32)
    out = [("token_embd.weight", f("embed"), True), ("output_norm.weight", f("out_norm"), False),
           ("rope_freqs.weight", rope, False)]
    names = [("attn_norm", "attn_norm", False), ("attn_q", "q.weight", True), ("attn_k", "k.weight", True),
             ("attn_v", "v.weight", True), ("attn_k_norm", "k_norm", False), ("attn_q_norm", "q_norm", False),
             ("attn_output", "o.weight", True), ("post_attention_norm", "post_attn_norm", False),
             ("ffn_norm", "ffn_norm", False), ("ffn_gate", "gate.weight", True), ("ffn_up", "up.weight", True),
             ("ffn_down", "down.weight", True), ("post_ffw_norm", "post_ffw_norm", False),
             ("layer_output_scale", "out_scale", False)]
    for i in range(c.n_layer):
        for gname, tname, mat in names:
            out.append((f"blk.{i}.{gname}.weight", f(f"blocks.{i}.{tname}"), mat))
    return out


def export(ckpt, vocab, path, kind, name):
    c = Config()
    sd = torch.load(ckpt)["model"]
    w = gguf.Writer()
    metadata(w, c, vocab, name)
    for gname, a, mat in tensors(sd, c):
        a = np.ascontiguousarray(a, dtype=np.float32)
        ne = list(reversed(a.shape))          # ggml order: ne[0] is the contiguous (input) dim
        if mat and kind == "q4_0":
            w.add_tensor(gname, ne, gguf.GGML_Q4_0, gguf.quantize_q4_0(a))
        else:
            w.add_tensor(gname, ne, gguf.GGML_F32, a.tobytes())
    w.write(path)
    print(f"export: {path} ({kind}, {os.path.getsize(path)} bytes)")


def main():
    if len(sys.argv) not in (5, 6) or sys.argv[4] not in ("f32", "q4_0"):
        raise SystemExit("usage: export_gguf.py CKPT.pt TOKENIZER.json OUT.gguf f32|q4_0 [NAME]")
    with open(sys.argv[2], encoding="utf-8") as f:
        vocab = json.load(f)
    name = sys.argv[5] if len(sys.argv) == 6 else "nibble-kjv"
    export(sys.argv[1], vocab, sys.argv[3], sys.argv[4], name)


if __name__ == "__main__":
    main()
