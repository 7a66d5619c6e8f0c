//! Bad input to the CLI: one line on stderr naming the problem, a non-zero
//! exit code, and no output file left behind.
#![allow(clippy::unwrap_used)]

use mote_tests::{random_model, tiny_decoder_config, tiny_encoder_config, work_dir};
use std::path::PathBuf;
use std::process::Command;

fn mote(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn fails_with(args: &[&str], needle: &str) {
    let (ok, _, err) = mote(args);
    assert!(!ok, "mote {args:?} succeeded");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "mote {args:?}: not one line: {err}"
    );
    assert!(
        err.contains(needle),
        "mote {args:?}: {err:?} does not mention {needle:?}"
    );
}

/// A flag value clap refuses: exit code 2, clap's message (the value, the
/// flag, and the choices or the reason), no output written.
fn usage_error(args: &[&str], needles: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "mote {args:?}: {err}");
    for n in needles {
        assert!(
            err.contains(n),
            "mote {args:?}: {err:?} does not mention {n:?}"
        );
    }
}

fn tiny(kind: &str) -> PathBuf {
    let p = work_dir().join(format!("cli-{kind}-{}.mote", std::process::id()));
    let cfg = if kind == "dec" {
        tiny_decoder_config()
    } else {
        tiny_encoder_config()
    };
    random_model(cfg, 4).write(&p).unwrap();
    p
}

#[test]
fn bad_inputs_get_one_line_errors() {
    let enc = tiny("enc");
    let dec = tiny("dec");
    let (enc_s, dec_s) = (enc.to_str().unwrap(), dec.to_str().unwrap());
    fails_with(&["inspect", "/nonexistent/x.mote"], "no such file");
    fails_with(&["inspect", "/tmp"], "is a directory");
    fails_with(&["embed", dec_s, "--ids", "1,2"], "needs an encoder");
    fails_with(&["generate", enc_s, "--ids", "1,2"], "needs a decoder");
    fails_with(&["embed", enc_s, "--text", "  "], "empty");
    fails_with(&["embed", enc_s, "--text", "hello"], "no vocabulary");
    fails_with(&["embed", enc_s, "--ids", "1,99"], "token id 99");
    fails_with(
        &["embed", enc_s, "--ids", &vec!["1"; 17].join(",")],
        "exceed the model's maximum sequence of 16",
    );
    fails_with(
        &["generate", dec_s, "--ids", "1,2", "--max-tokens", "40"],
        "exceed the model's maximum sequence of 32",
    );
    fails_with(
        &["import", "/nonexistent/ckpt", "-o", "/tmp/never.mote"],
        "does not exist",
    );
    let never = work_dir().join(format!("cli-kv-{}.mote", std::process::id()));
    usage_error(
        &[
            "quantize",
            dec_s,
            "-o",
            never.to_str().unwrap(),
            "--kv",
            "int3",
        ],
        &[
            "invalid value 'int3' for '--kv <KV>'",
            "[possible values: f32, int8]",
        ],
    );
    usage_error(
        &[
            "quantize",
            dec_s,
            "-o",
            never.to_str().unwrap(),
            "--dtype",
            "int2",
        ],
        &["'int2'", "--dtype", "int8, int8-row, int4, int4-sym, f16"],
    );
    assert!(!never.exists());

    // A corrupt model: one flipped payload byte.
    let mut bytes = std::fs::read(&enc).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x40;
    let bad = work_dir().join(format!("cli-corrupt-{}.mote", std::process::id()));
    std::fs::write(&bad, &bytes).unwrap();
    fails_with(&["inspect", bad.to_str().unwrap()], "payload CRC mismatch");
    std::fs::write(&bad, &bytes[..100]).unwrap();
    fails_with(&["embed", bad.to_str().unwrap(), "--ids", "1"], "truncated");

    // A failed import leaves no output file.
    let out = work_dir().join(format!("cli-never-{}.mote", std::process::id()));
    let ckpt = work_dir().join(format!("cli-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&ckpt).unwrap();
    std::fs::write(ckpt.join("config.json"), "{not json").unwrap();
    fails_with(
        &[
            "import",
            ckpt.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "config.json",
    );
    assert!(!out.exists());
    let leftovers = std::fs::read_dir(work_dir()).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".cli-never")
    });
    assert_eq!(leftovers.count(), 0);
}

#[test]
fn good_inputs_work() {
    let enc = tiny("enc2");
    let (ok, out, err) = mote(&["inspect", enc.to_str().unwrap(), "--json", "--seq", "8"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["architecture"], "encoder");
    let file = mote_host::ModelFile::read(&enc).unwrap();
    let m = mote_core::Model::from_bytes(file.bytes()).unwrap();
    assert_eq!(
        v["arena"]["bytes"],
        m.arena_bytes(&mote_core::RunConfig { max_seq: 8 }).unwrap()
    );
    assert_eq!(
        v["tensors"].as_array().unwrap().len() as u32,
        m.tensor_count()
    );
    assert_eq!(v["kv_cache"], "f32");
    // `--kv int8` stores the attention cache as int8: the arena shrinks.
    let kv8 = work_dir().join(format!("cli-kv8-{}.mote", std::process::id()));
    let (ok, _, err) = mote(&[
        "quantize",
        enc.to_str().unwrap(),
        "-o",
        kv8.to_str().unwrap(),
        "--kv",
        "int8",
        "--json",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = mote(&["inspect", kv8.to_str().unwrap(), "--json", "--seq", "8"]);
    assert!(ok, "{err}");
    let w: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(w["kv_cache"], "int8");
    assert!(w["arena"]["bytes"].as_u64() < v["arena"]["bytes"].as_u64());
    let _ = std::fs::remove_file(&kv8);
}

#[test]
fn unknown_or_unavailable_backend_is_refused() {
    let enc = tiny("enc3");
    let missing = if cfg!(target_arch = "aarch64") {
        "avx2"
    } else {
        "neon"
    };
    for name in [missing, "warp-drive"] {
        let out = Command::new(env!("CARGO_BIN_EXE_mote"))
            .env("MOTE_BACKEND", name)
            .arg("inspect")
            .arg(&enc)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is not a backend this machine runs"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1);
    }
}

#[test]
fn bad_training_input_gets_one_line_errors() {
    let dir = work_dir().join(format!("cli-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let out = dir.join("out");
    let out_s = out.to_str().unwrap();
    fails_with(
        &["train", "/nonexistent/run.toml"],
        "reading /nonexistent/run.toml",
    );
    let unknown = cfg("unknown.toml", "task = \"digits\"\n[model]\nwidth = 3\n");
    fails_with(&["train", &unknown, "-o", out_s], "unknown field `width`");
    let task = cfg("task.toml", "task = \"mnist\"\n");
    fails_with(&["train", &task, "-o", out_s], "unknown variant `mnist`");
    let batch = cfg("batch.toml", "task = \"digits\"\n[train]\nbatch = 0\n");
    fails_with(&["train", &batch, "-o", out_s], "batch must be at least 1");
    // A .mote file is not a training checkpoint.
    let enc = tiny("enc-export");
    let enc_s = enc.to_str().unwrap();
    let model_out = dir.join("x.mote");
    fails_with(
        &["export", enc_s, "-o", model_out.to_str().unwrap()],
        "is not a safetensors file",
    );
    assert!(!model_out.exists());
    // Classifier and feature calls on a model without a head / with token input.
    fails_with(
        &["classify", enc_s, "--features", "0.5,0.25"],
        "no classifier head",
    );
    fails_with(&["classify", enc_s, "--text", "hello"], "no vocabulary");
    fails_with(&["run", enc_s, "--features", "0.5,0.25"], "takes token ids");
    fails_with(&["eval", &unknown, enc_s], "unknown field");
    usage_error(
        &["eval", &unknown, enc_s, "--split", "dev"],
        &["'dev'", "--split", "test, validation, train"],
    );
    usage_error(
        &["fetch", "gpt5"],
        &["'gpt5'", "minilm, smollm2, bbc-news, digits, austen"],
    );
}

/// `mote quantize --calib`: every bad calibration input gets its own
/// one-line error and leaves no output file; good samples make an
/// integer-only model that `inspect` reports and `run` runs.
#[test]
fn calibration_inputs() {
    let enc = tiny("calib-enc");
    let enc_s = enc.to_str().unwrap();
    let dir = work_dir().join(format!("calib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.mote");
    let out_s = out.to_str().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let ids = file("ids.json", "[[1,2,3,4],[5,6,7]]");
    // `mote quantize <enc> -o <out> <extra…>`.
    let q = |extra: &[&str]| -> Vec<String> {
        ["quantize", enc_s, "-o", out_s]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let fails = |extra: &[&str], needle: &str| {
        let v = q(extra);
        fails_with(&v.iter().map(String::as_str).collect::<Vec<_>>(), needle)
    };
    fails(&["--dtype", "int4", "--calib", &ids], "use --dtype int8");
    let usage = |extra: &[&str], needles: &[&str]| {
        let v = q(extra);
        usage_error(&v.iter().map(String::as_str).collect::<Vec<_>>(), needles)
    };
    usage(
        &["--calib", &ids, "--method", "median"],
        &["'median'", "--method", "minmax, percentile, mse"],
    );
    usage(
        &["--calib", &ids, "--smooth", "2"],
        &["'2'", "--smooth", "expected a number in (0, 1] or off"],
    );
    fails(&["--calib", "/nonexistent/calib.json"], "calib.json");
    fails(
        &["--calib", &file("x.bin", "")],
        "calibration files are .txt, .json or .csv",
    );
    fails(
        &["--calib", &file("bad.json", "{\"a\": 1}")],
        "expected an array of number arrays",
    );
    fails(
        &["--calib", &file("frac.json", "[[1.5]]")],
        "not a whole number",
    );
    fails(
        &["--calib", &file("bad.csv", "1,x,3\n")],
        "line 1: not numbers",
    );
    fails(
        &["--calib", &file("empty.json", "[]")],
        "no calibration samples",
    );
    // This model has no vocabulary: text cannot be tokenized.
    fails(&["--calib", &file("t.txt", "hello\n")], "vocabulary");
    // Out-of-range ids in a sample are the session's error, named.
    fails(&["--calib", &file("big.json", "[[1,999]]")], "token id 999");
    assert!(!out.exists(), "a failed calibration left an output file");
    // Good samples, every method, smoothing on and off.
    for (method, smooth) in [("percentile", "0.5"), ("mse", "off"), ("minmax", "0.8")] {
        let v = q(&["--calib", &ids, "--method", method, "--smooth", smooth]);
        let (ok, stdout, err) = mote(&v.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "{method}: {err}");
        assert!(
            stdout.contains("AttnIn") && stdout.contains("Residual"),
            "{stdout}"
        );
        let (ok, info, _) = mote(&["inspect", out_s, "--json"]);
        assert!(ok && info.contains("\"integer\": true"), "{info}");
        let (ok, emb, err) = mote(&["run", out_s, "--ids", "1,2,3"]);
        assert!(ok && emb.contains("\"embedding\""), "{emb} {err}");
    }
    // A calibrated model cannot be calibrated again.
    fails_with(
        &[
            "quantize",
            out_s,
            "-o",
            dir.join("again.mote").to_str().unwrap(),
            "--calib",
            &ids,
        ],
        "f32 model",
    );
}
