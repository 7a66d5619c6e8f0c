//! Bakes the model named by `MOTE_MODEL` and the ids in `MOTE_IDS` into the
//! firmware, and sizes the arena with `mote-core` itself (run on the host).
//!
//! Writes `$OUT_DIR/generated.rs` with `MODEL_PATH`, `MODEL_LEN`, `IDS`,
//! `MAX_SEQ` and `ARENA_BYTES`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs, process};

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    process::exit(1);
}

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_else(|| fail("OUT_DIR not set")));

    // cortex-m-rt's link.x includes memory.x: put it on the linker path.
    let memory_x = manifest_dir.join("memory.x");
    fs::copy(&memory_x, out_dir.join("memory.x")).unwrap_or_else(|e| fail(&format!("copy memory.x: {e}")));
    println!("cargo:rustc-link-search={}", out_dir.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");

    println!("cargo:rerun-if-env-changed=MOTE_MODEL");
    println!("cargo:rerun-if-env-changed=MOTE_IDS");
    println!("cargo:rerun-if-env-changed=MOTE_MAX_SEQ");

    // The model path: absolute, or relative to the firmware workspace (`firmware/`).
    let model_env = env::var("MOTE_MODEL")
        .unwrap_or_else(|_| fail("set MOTE_MODEL to the path of a .mote file (e.g. MOTE_MODEL=/tmp/tiny_enc.mote)"));
    let model_path = {
        let p = Path::new(&model_env);
        let p = if p.is_absolute() { p.to_path_buf() } else { manifest_dir.join("..").join(p) };
        p.canonicalize().unwrap_or_else(|e| fail(&format!("MOTE_MODEL={model_env}: {e}")))
    };
    println!("cargo:rerun-if-changed={}", model_path.display());
    let bytes = fs::read(&model_path).unwrap_or_else(|e| fail(&format!("read {}: {e}", model_path.display())));

    // Token ids: comma-separated, default 1,2,3,4,5.
    let ids_env = env::var("MOTE_IDS").unwrap_or_else(|_| "1,2,3,4,5".into());
    let ids: Vec<u32> = ids_env
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or_else(|e| fail(&format!("MOTE_IDS: bad id {s:?}: {e}"))))
        .collect();
    if ids.is_empty() {
        fail("MOTE_IDS holds no ids");
    }

    // Run length: MOTE_MAX_SEQ, default the number of ids.
    let max_seq: u32 = match env::var("MOTE_MAX_SEQ") {
        Ok(s) => s.trim().parse().unwrap_or_else(|e| fail(&format!("MOTE_MAX_SEQ={s:?}: {e}"))),
        Err(_) => u32::try_from(ids.len()).unwrap_or(u32::MAX),
    };

    // Model::from_bytes needs a 16-byte aligned buffer: copy into u128s.
    let mut words = vec![0u128; bytes.len().div_ceil(16)];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks(16)) {
        let mut b = [0u8; 16];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u128::from_ne_bytes(b);
    }
    let aligned: &[u8] = &bytemuck::cast_slice::<u128, u8>(&words)[..bytes.len()];
    let run = mote_core::RunConfig { max_seq };
    let arena_bytes = match mote_core::Model::from_bytes(aligned).and_then(|m| m.arena_bytes(&run)) {
        Ok(n) => n,
        Err(e) => {
            // Let the firmware report it at run time (and exit 1).
            println!("cargo:warning=mote-smoke: cannot size the arena for {}: {e}", model_path.display());
            16
        }
    };

    let mut src = String::new();
    let _ = writeln!(src, "/// Absolute path of the baked-in model.");
    let _ = writeln!(src, "pub const MODEL_PATH: &str = {:?};", model_path.display().to_string());
    let _ = writeln!(src, "/// Bytes of the model.");
    let _ = writeln!(src, "pub const MODEL_LEN: usize = {};", bytes.len());
    let _ = writeln!(src, "/// Input token ids (MOTE_IDS).");
    let _ = writeln!(src, "pub const IDS: [u32; {}] = {:?};", ids.len(), ids);
    let _ = writeln!(src, "/// RunConfig::max_seq.");
    let _ = writeln!(src, "pub const MAX_SEQ: u32 = {max_seq};");
    let _ = writeln!(src, "/// Model::arena_bytes(&RunConfig {{ max_seq: MAX_SEQ }}).");
    let _ = writeln!(src, "pub const ARENA_BYTES: usize = {arena_bytes};");
    let _ = writeln!(
        src,
        "/// The model, 16-byte aligned.\npub static MODEL: Aligned<[u8; MODEL_LEN]> = Aligned(*include_bytes!({:?}));",
        model_path.display().to_string()
    );
    fs::write(out_dir.join("generated.rs"), src).unwrap_or_else(|e| fail(&format!("write generated.rs: {e}")));
}
