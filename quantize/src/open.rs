//! The one way a command opens its model, arena and session: the file
//! mapped in place (a regular file only, refused at once otherwise), the
//! arena allocated fallibly (an allocation the machine cannot make is an
//! error naming the bytes), and the session on the backend `MOTE_BACKEND`
//! chose, through `Session::set_backend`.

use anyhow::{anyhow, bail, Result};
use mote_core::quant::Backend;
use mote_core::{Architecture, Model, RunConfig, Session};
use mote_host::ModelFile;
use std::path::{Path, PathBuf};

/// A model file opened for a command.
pub struct Loaded {
    path: PathBuf,
    file: ModelFile,
}

impl Loaded {
    /// Maps `path` ([`ModelFile::read`]: a directory, FIFO or device is
    /// refused before a byte is read).
    pub fn open(path: &Path) -> Result<Loaded> {
        Ok(Loaded {
            path: path.to_path_buf(),
            file: ModelFile::read(path)?,
        })
    }

    /// Bytes already in memory (a checkpoint imported on the fly), named
    /// `path` in errors.
    pub fn from_file(path: &Path, file: ModelFile) -> Loaded {
        Loaded {
            path: path.to_path_buf(),
            file,
        }
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.file.bytes()
    }

    /// The model, every check of `Model::from_bytes` passed; its error is
    /// prefixed with the path.
    pub fn model(&self) -> Result<Model<'_>> {
        Model::from_bytes(self.file.bytes()).map_err(|e| anyhow!("{}: {e}", self.path.display()))
    }

    /// The model, which `command` needs to be an `arch` model.
    pub fn model_of(&self, arch: Architecture, command: &str) -> Result<Model<'_>> {
        let m = self.model()?;
        let have = m.config().arch;
        if have != arch {
            bail!(
                "{}: {command} needs {} model, this one is {}",
                self.path.display(),
                article(arch),
                article(have)
            );
        }
        Ok(m)
    }
}

/// "an encoder" / "a decoder".
pub fn article(a: Architecture) -> &'static str {
    match a {
        Architecture::Encoder => "an encoder",
        Architecture::Decoder => "a decoder",
    }
}

/// The architecture's name in reports.
pub fn arch_name(a: Architecture) -> &'static str {
    match a {
        Architecture::Encoder => "encoder",
        Architecture::Decoder => "decoder",
    }
}

/// The backend `MOTE_BACKEND=scalar|sse4.1|avx2|neon|…` asks for (parity
/// checks pin it), if any. A name that is no backend, or one this machine
/// cannot run, is an error that lists the ones it can.
pub fn chosen_backend() -> Result<Option<Backend>> {
    let Ok(name) = std::env::var("MOTE_BACKEND") else {
        return Ok(None);
    };
    match Backend::from_name(&name) {
        Some(b) if b.available() => Ok(Some(b)),
        _ => {
            let runs: Vec<&str> = Backend::ALL
                .iter()
                .filter(|b| b.available())
                .map(|b| b.name())
                .collect();
            bail!(
                "MOTE_BACKEND={name:?} is not a backend this machine runs (it runs {})",
                runs.join(", ")
            )
        }
    }
}

/// A session's arena, sized for one `RunConfig`.
pub struct Arena {
    bytes: Box<[u8]>,
    run: RunConfig,
}

impl Arena {
    /// The arena `m` needs for `run`, zeroed. An allocation the machine
    /// cannot make (a model with a large `max_seq` and a long generation)
    /// is an error naming the bytes, not an abort.
    pub fn new(m: &Model, run: RunConfig) -> Result<Arena> {
        let need = m
            .arena_bytes(&run)
            .map_err(|e| anyhow!("{e}"))?
            // The session aligns its start to 16 bytes.
            .checked_add(15)
            .ok_or_else(|| anyhow!("the arena for {} positions overflows", run.max_seq))?;
        let bytes = zeroed(need).ok_or_else(|| {
            anyhow!(
                "the arena for {} positions needs {need} bytes ({:.1} GiB), more than this machine can allocate",
                run.max_seq,
                need as f64 / (1u64 << 30) as f64
            )
        })?;
        Ok(Arena { bytes, run })
    }

    /// The run it was sized for.
    pub fn run(&self) -> RunConfig {
        self.run
    }

    /// A session of `m` on this arena, on the backend `MOTE_BACKEND` chose
    /// (else the best this machine runs).
    pub fn session<'m, 'a>(&'a mut self, m: &'m Model<'m>) -> Result<Session<'m, 'a>> {
        let mut s = Session::new(m, &mut self.bytes, self.run).map_err(|e| anyhow!("{e}"))?;
        if let Some(b) = chosen_backend()? {
            s.set_backend(b).map_err(|e| anyhow!("MOTE_BACKEND: {e}"))?;
        }
        Ok(s)
    }
}

/// `n` zeroed bytes, or `None` when the allocator has none: the pages come
/// from the system zeroed and are touched only as the session uses them.
fn zeroed(n: usize) -> Option<Box<[u8]>> {
    if n == 0 {
        return Some(Box::default());
    }
    let layout = std::alloc::Layout::array::<u8>(n).ok()?;
    // SAFETY: `layout` has a non-zero size (n > 0).
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is a fresh, zeroed allocation of `n` bytes with the layout
    // of `[u8; n]`, which is the layout `Box<[u8]>` frees it with; nothing
    // else owns it.
    Some(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n)) })
}

/// Turns a core error into the CLI's error.
pub fn core_err(e: mote_core::Error) -> anyhow::Error {
    anyhow!("{e}")
}
