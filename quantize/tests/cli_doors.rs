//! The doors a hostile-input probe found open in the `mote` binary, each
//! closed and checked here on the real binary (docs/RELIABILITY.md lists
//! them): outputs onto links, FIFOs, devices and directories; model inputs
//! that are no regular file; mapped (not copied) models; allocation failure;
//! an unbounded chat template; bad sampling parameters; temporary files
//! left by SIGTERM or SIGINT; and errors that blamed the wrong thing.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mote_core::config::Config;
use mote_host::VocabData;
use mote_tests::{random_model, tiny_decoder_config, tiny_encoder_config, work_dir};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn mote() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mote"))
}

fn run(args: &[&str]) -> Output {
    mote().args(args).output().unwrap()
}

/// `mote args` fails with a message containing every needle.
fn fails_with(args: &[&str], needles: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "mote {args:?} succeeded");
    for n in needles {
        assert!(
            err.contains(n),
            "mote {args:?}: {err:?} does not mention {n:?}"
        );
    }
    err
}

/// A fresh directory of this test.
fn dir(name: &str) -> PathBuf {
    let d = work_dir().join(format!("doors-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_model(path: &Path, cfg: Config) {
    random_model(cfg, 7).write(path).unwrap();
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// A character device to write onto: as root a node of our own (the same
/// device as /dev/null), so a broken check could never replace the real
/// /dev/null; otherwise /dev/null itself, whose directory is not writable.
fn device(d: &Path) -> PathBuf {
    // SAFETY: no arguments.
    if unsafe { libc::geteuid() } != 0 {
        return PathBuf::from("/dev/null");
    }
    let p = d.join("null");
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path, a mode and a device number.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    assert_eq!(r, 0, "mknod");
    p
}

fn temporaries(d: &Path) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

#[test]
fn outputs_onto_links_fifos_devices_and_directories_are_refused() {
    let d = dir("outputs");
    let m = d.join("m.mote");
    write_model(&m, tiny_encoder_config());
    let before = std::fs::read(&m).unwrap();
    let target = d.join("target.mote");
    std::fs::write(&target, b"keep").unwrap();
    let link = d.join("link.mote");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let to_input = d.join("to-input.mote");
    std::os::unix::fs::symlink(&m, &to_input).unwrap();
    let fifo = d.join("fifo.mote");
    mkfifo(&fifo);
    let dev = device(&d);
    let sub = d.join("sub");
    std::fs::create_dir(&sub).unwrap();
    for (out, what) in [
        (&link, "is a symbolic link"),
        (&to_input, "is a symbolic link"),
        (&fifo, "is a FIFO"),
        (&dev, "is a character device"),
        (&sub, "is a directory"),
    ] {
        for cmd in [
            vec!["quantize", s(&m), "-o", s(out)],
            vec!["import", s(&d), "-o", s(out)],
        ] {
            fails_with(&cmd, &[s(out), what, "refusing to replace it"]);
        }
    }
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(std::fs::symlink_metadata(&dev)
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(std::fs::symlink_metadata(&sub).unwrap().is_dir());
    assert_eq!(std::fs::read(&m).unwrap(), before, "the input changed");
    assert!(temporaries(&d).is_empty(), "{:?}", temporaries(&d));
    let _ = std::fs::remove_dir_all(&d);
}

/// `-o` onto the input itself, or onto a hard link of it: the output is a
/// new file renamed over the name, so the mapped input is never truncated
/// under the reader and its other name keeps the old model.
#[test]
fn an_output_onto_its_own_input_goes_through_a_rename() {
    let d = dir("same");
    let m = d.join("m.mote");
    write_model(&m, tiny_decoder_config());
    let before = std::fs::read(&m).unwrap();
    let hard = d.join("hard.mote");
    std::fs::hard_link(&m, &hard).unwrap();
    let out = run(&["quantize", s(&hard), "-o", s(&hard), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&m).unwrap(), before, "the other name changed");
    let out = run(&["quantize", s(&m), "-o", s(&m), "--dtype", "int4", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = run(&["inspect", s(&m), "--json"]);
    assert!(info.status.success());
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let dtypes: Vec<&str> = v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["dtype"].as_str().unwrap())
        .collect();
    assert!(dtypes.contains(&"i4"), "{dtypes:?}");
    assert!(temporaries(&d).is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

/// Runs `mote args`, killed if it takes longer than `limit` (a FIFO input
/// used to wait for a writer forever).
fn run_within(args: &[&str], limit: Duration) -> Output {
    let mut child = mote()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("mote {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn model_inputs_that_are_no_regular_file_are_refused_at_once() {
    let d = dir("inputs");
    let fifo = d.join("fifo.mote");
    mkfifo(&fifo);
    let limit = Duration::from_secs(20);
    for (input, what) in [
        ("/dev/zero", "is a character device, not a regular file"),
        (s(&fifo), "is a FIFO, not a regular file"),
        (s(&d), "is a directory"),
    ] {
        for cmd in [
            vec!["inspect", input],
            vec!["run", input, "--ids", "1"],
            vec!["generate", input, "--ids", "1"],
        ] {
            let out = run_within(&cmd, limit);
            assert!(!out.status.success());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(what), "mote {cmd:?}: {err}");
        }
    }
    // quantize imports a directory (a checkpoint) but maps a file.
    let out = run_within(
        &["quantize", "/dev/zero", "-o", s(&d.join("o.mote"))],
        limit,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a character device"), "{err}");
    let out = run_within(&["quantize", s(&fifo), "-o", s(&d.join("o.mote"))], limit);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a FIFO"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A model of about 80 MB (f32), made once per test binary.
fn big_model() -> PathBuf {
    static BIG: OnceLock<PathBuf> = OnceLock::new();
    BIG.get_or_init(|| {
        let mut cfg = tiny_encoder_config();
        cfg.d_model = 512;
        cfg.n_heads = 8;
        cfg.n_kv_heads = 8;
        cfg.head_dim = 64;
        cfg.d_ff = 1024;
        cfg.n_layers = 8;
        cfg.vocab_size = 1000;
        cfg.max_seq = 64;
        let p = work_dir().join(format!("doors-big-{}.mote", std::process::id()));
        write_model(&p, cfg);
        // The builder's memory goes back to the system: a child forked from
        // this process starts its peak memory at this process's.
        #[cfg(target_env = "gnu")]
        // SAFETY: no arguments; only returns free heap memory.
        unsafe {
            libc::malloc_trim(0);
        }
        p
    })
    .clone()
}

/// This process's resident memory now, in bytes.
fn own_rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: no arguments.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

/// Runs `cmd` to the end and returns its peak resident memory in bytes
/// (`wait4`'s `ru_maxrss` for this child alone), less nothing: the peak a
/// child reports starts at what it was forked from, so the child is forked
/// (not `vfork`ed from this process's whole history of peaks) and that
/// start, this process's memory now, is returned beside it.
#[allow(clippy::zombie_processes)] // reaped by `wait4`, which also gives its usage
fn peak_rss(cmd: &mut Command) -> (u64, u64) {
    // SAFETY: an empty closure: it only makes `spawn` fork, not vfork.
    unsafe { cmd.pre_exec(|| Ok(())) };
    let ours = own_rss();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into the two locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed ({status:#x})"
    );
    (usage.ru_maxrss as u64 * 1024, ours)
}

/// The model file is mapped in place: `inspect` (which checks the payload
/// CRC, so touches every page) peaks at about the file's size, not twice
/// it (a read into a buffer, then a copy into an aligned one); `quantize`
/// maps its input once (it used to read it for its magic, then again).
#[test]
fn models_are_mapped_not_copied() {
    let big = big_model();
    let len = std::fs::metadata(&big).unwrap().len();
    let (inspect, ours) = peak_rss(mote().arg("inspect").arg(&big));
    eprintln!("file {len} bytes; inspect peaked at {inspect} bytes (forked from {ours})");
    assert!(
        inspect < ours + len + len / 4 + (24 << 20),
        "inspect peaked at {inspect} bytes for a {len}-byte model"
    );
    let d = dir("mapped");
    let out = d.join("q.mote");
    let (quantize, ours) = peak_rss(
        mote()
            .arg("quantize")
            .arg(&big)
            .arg("-o")
            .arg(&out)
            .args(["--dtype", "int4", "--json"]),
    );
    let out_len = std::fs::metadata(&out).unwrap().len();
    eprintln!("quantize to {out_len} bytes peaked at {quantize} bytes (forked from {ours})");
    // The input once, the output's few copies (builder, image, aligned
    // check), the binary: well under two inputs.
    assert!(
        quantize < ours + len + 4 * out_len + (24 << 20),
        "quantize peaked at {quantize} bytes for a {len}-byte model"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A decoder whose `max_seq` is large but valid (2^20): generating to the
/// end needs a 2 GiB arena. Under a 1 GiB address-space limit that
/// allocation fails, which is an error naming the bytes, not an abort.
#[test]
fn an_arena_the_machine_cannot_allocate_is_an_error() {
    let d = dir("alloc");
    let mut cfg = tiny_decoder_config();
    cfg.max_seq = 1 << 20;
    cfg.d_model = 128;
    cfg.n_heads = 8;
    cfg.n_kv_heads = 8;
    cfg.head_dim = 16;
    let m = d.join("long.mote");
    write_model(&m, cfg);
    let mut cmd = mote();
    cmd.args([
        "generate",
        s(&m),
        "--ids",
        "1",
        "--max-tokens",
        "1048575",
        "--threads",
        "1",
    ]);
    // SAFETY: only setrlimit (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{:?}: {err}", out.status);
    assert!(
        err.contains("the arena for 1048576 positions needs")
            && err.contains("bytes")
            && err.contains("more than this machine can allocate"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A decoder with a vocabulary of single letters and this chat template.
fn with_template(path: &Path, template: &str) {
    let cfg = tiny_decoder_config();
    let mut b = random_model(cfg, 3);
    let tokens = (0..cfg.vocab_size)
        .map(|i| (vec![b'a' + (i % 26) as u8; 1 + (i / 26) as usize], 0u8))
        .collect();
    b.set_vocab(VocabData {
        kind: mote_core::TokenizerKind::ByteLevelBpe,
        flags: 0,
        pre_tokenizer: mote_core::PreTokenizer::Gpt2,
        tokens,
        merges: Vec::new(),
        unk_id: u32::MAX,
        chat_template: template.into(),
    });
    b.write(path).unwrap();
}

#[test]
fn the_chat_template_is_bounded() {
    let d = dir("template");
    let limit = Duration::from_secs(30);
    let nested = d.join("nested.mote");
    with_template(
        &nested,
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ messages[0].content }}{% endfor %}{% endfor %}",
    );
    let out = run_within(&["generate", s(&nested), "--prompt", "ab"], limit);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("chat template runs more than 200000 instructions"),
        "{err}"
    );
    let wide = d.join("wide.mote");
    with_template(&wide, "{{ 'x' * 50000000 }}");
    let out = run_within(&["generate", s(&wide), "--prompt", "ab"], limit);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("chat template writes more than"), "{err}");
    // A template within its bounds still works.
    let fine = d.join("fine.mote");
    with_template(
        &fine,
        "{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}c{% endif %}",
    );
    let out = run_within(
        &[
            "generate",
            s(&fine),
            "--prompt",
            "ab",
            "--max-tokens",
            "2",
            "--json",
        ],
        limit,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sampling_parameters_out_of_range_are_refused() {
    let d = dir("sampling");
    let m = d.join("m.mote");
    write_model(&m, tiny_decoder_config());
    for t in ["nan", "inf", "-inf", "-1", "0"] {
        fails_with(
            &["generate", s(&m), "--ids", "1", "--temperature", t],
            &["--temperature", "expected a finite number above 0"],
        );
    }
    fails_with(
        &[
            "generate",
            s(&m),
            "--ids",
            "1",
            "--greedy",
            "--temperature",
            "0.5",
        ],
        &["cannot be used with"],
    );
    fails_with(
        &["generate", s(&m), "--ids", "1", "--threads", "0"],
        &["--threads", "at least 1"],
    );
    fails_with(
        &["generate", s(&m), "--ids", "1", "--max-tokens", "0"],
        &["--max-tokens"],
    );
    // Scripts pass --greedy; a valid temperature samples.
    for extra in [&["--greedy"][..], &["--temperature", "0.7", "--seed", "3"]] {
        let mut args = vec!["generate", s(&m), "--ids", "1,2", "--max-tokens", "3"];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// SIGTERM or SIGINT while `quantize` writes its output: the temporary
/// file beside it is removed, and the process ends by that signal. The
/// test waits until the temporary file exists, then sends the signal (a
/// few tries: a write can end before the test sees it).
#[test]
fn a_signal_during_a_write_leaves_no_temporary_file() {
    let big = big_model();
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let d = dir(&format!("signal{signal}"));
        let out = d.join("q.mote");
        let mut caught = false;
        for _ in 0..8 {
            let mut child = mote()
                .arg("quantize")
                .arg(&big)
                .arg("-o")
                .arg(&out)
                .args(["--dtype", "f16", "--json"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let tmp = format!(".q.mote.tmp{}", child.id());
            let seen = loop {
                if d.join(&tmp).exists() {
                    break true;
                }
                if child.try_wait().unwrap().is_some() {
                    break false;
                }
                std::hint::spin_loop();
            };
            if !seen {
                let _ = std::fs::remove_file(&out);
                continue;
            }
            // SAFETY: sends a signal to our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
            let status = child.wait().unwrap();
            assert!(temporaries(&d).is_empty(), "left: {:?}", temporaries(&d));
            if status.signal() == Some(signal) {
                caught = true;
                break;
            }
            // The signal came after the rename: a complete output.
            assert!(status.success(), "{status:?}");
            let _ = std::fs::remove_file(&out);
        }
        assert!(caught, "never caught a write in progress in 8 tries");
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// An empty or non-Mote file given to `quantize` is named as what it is
/// (it used to be "expected a checkpoint directory…"), and a checkpoint
/// whose value makes an invalid model says which value, under the
/// checkpoint's name (it used to blame the writer).
#[test]
fn quantize_says_what_is_wrong_with_its_input() {
    let d = dir("quantize-input");
    let out = d.join("o.mote");
    let empty = d.join("empty.mote");
    std::fs::write(&empty, b"").unwrap();
    fails_with(
        &["quantize", s(&empty), "-o", s(&out)],
        &["empty.mote: not a .mote model: the file is empty"],
    );
    let junk = d.join("junk.bin");
    std::fs::write(&junk, [0x55u8; 4096]).unwrap();
    let err = fails_with(
        &["quantize", s(&junk), "-o", s(&out)],
        &["junk.bin", "not a .mote model (bad magic)"],
    );
    assert!(!err.contains("checkpoint directory"), "{err}");
    let short = d.join("short.mote");
    std::fs::write(&short, b"MOTE").unwrap();
    fails_with(
        &["quantize", s(&short), "-o", s(&out)],
        &["short.mote", "truncated"],
    );
    // A BERT checkpoint with no layers.
    let ckpt = d.join("ckpt");
    std::fs::create_dir(&ckpt).unwrap();
    std::fs::write(
        ckpt.join("config.json"),
        r#"{"hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 0,
            "intermediate_size": 32, "vocab_size": 50, "max_position_embeddings": 16,
            "type_vocab_size": 2}"#,
    )
    .unwrap();
    let tensors: Vec<(&str, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight", vec![50, 16]),
        ("embeddings.position_embeddings.weight", vec![16, 16]),
        ("embeddings.token_type_embeddings.weight", vec![2, 16]),
        ("embeddings.LayerNorm.weight", vec![16]),
        ("embeddings.LayerNorm.bias", vec![16]),
    ];
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()])
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s), b)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(
        ckpt.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    for cmd in ["quantize", "import"] {
        let err = fails_with(&[cmd, s(&ckpt), "-o", s(&out)], &[s(&ckpt)]);
        assert!(
            err.contains("n_layers") || err.contains("num_hidden_layers"),
            "{cmd}: {err}"
        );
        assert!(!err.contains("writer produced"), "{cmd}: {err}");
    }
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&d);
}
