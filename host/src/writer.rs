//! The `.mote` writer (the inverse of `mote_core::Model::from_bytes`), the
//! one way every output file is written ([`write_atomic`]: a temporary file
//! and a rename, never onto a link, a device or a FIFO, and no temporary file
//! left behind by SIGINT or SIGTERM), and [`ModelFile`], a model mapped in
//! place from a regular file.

use anyhow::{bail, Context, Result};
use mote_core::config::Config;
use mote_core::format::{
    Dtype, SectionKind, ALIGN, CRC32, FORMAT_VERSION, HEADER_LEN, MAGIC, SECTION_ENTRY_LEN,
    SECTION_OPTIONAL, TENSOR_ENTRY_LEN,
};
use mote_core::vocab::{PreTokenizer, TokenizerKind, VOCAB_HEADER_LEN};
use mote_core::TensorName;
use std::path::Path;

/// A tokenizer vocabulary to store in a model.
#[derive(Debug, Clone)]
pub struct VocabData {
    /// Tokenizer algorithm.
    pub kind: TokenizerKind,
    /// `mote_core::vocab::FLAG_*` bits.
    pub flags: u32,
    /// Pre-tokenizer.
    pub pre_tokenizer: PreTokenizer,
    /// Token texts and kinds (`mote_core::vocab::kind`), in id order.
    pub tokens: Vec<(Vec<u8>, u8)>,
    /// BPE merges as pairs of token ids, by rank.
    pub merges: Vec<(u32, u32)>,
    /// Unknown token id or `u32::MAX`.
    pub unk_id: u32,
    /// Chat template (Jinja), empty if none.
    pub chat_template: String,
}

impl VocabData {
    /// The vocabulary of a model, as writer input (`None` without one).
    pub fn of(m: &mote_core::Model) -> Option<VocabData> {
        let v = m.vocab();
        if v.is_empty() && v.kind == mote_core::TokenizerKind::None {
            return None;
        }
        Some(VocabData {
            kind: v.kind,
            flags: v.flags,
            pre_tokenizer: v.pre_tokenizer,
            tokens: (0..v.len())
                .map(|i| {
                    (
                        v.token(i).unwrap_or_default().to_vec(),
                        v.token_kind(i).unwrap_or(0),
                    )
                })
                .collect(),
            merges: (0..v.merge_count()).filter_map(|r| v.merge(r)).collect(),
            unk_id: v.unk_id,
            chat_template: v.chat_template().to_string(),
        })
    }

    /// The vocabulary section's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let n = self.tokens.len() as u32;
        for w in [
            self.kind as u32,
            self.flags,
            self.pre_tokenizer as u32,
            n,
            self.merges.len() as u32,
            self.unk_id,
            self.chat_template.len() as u32,
            0,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        debug_assert_eq!(out.len(), VOCAB_HEADER_LEN);
        if n > 0 {
            let mut off = 0u32;
            out.extend_from_slice(&off.to_le_bytes());
            for (t, _) in &self.tokens {
                off += t.len() as u32;
                out.extend_from_slice(&off.to_le_bytes());
            }
        }
        for (_, k) in &self.tokens {
            out.push(*k);
        }
        while out.len() % 4 != 0 {
            out.push(0);
        }
        for (a, b) in &self.merges {
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
        }
        out.extend_from_slice(self.chat_template.as_bytes());
        for (t, _) in &self.tokens {
            out.extend_from_slice(t);
        }
        out
    }
}

struct TensorEntry {
    name: String,
    dtype: Dtype,
    dims: Vec<u32>,
    data: Vec<u8>,
}

/// Collects a config, tensors and a vocabulary and lays them out as a `.mote` file.
pub struct ModelBuilder {
    config: Config,
    tensors: Vec<TensorEntry>,
    /// The names so far (adding stays linear in the number of tensors).
    names: std::collections::HashSet<String>,
    vocab: Option<VocabData>,
    /// Optional sections after the vocabulary (kind, bytes): the audio
    /// front end.
    optional: Vec<(SectionKind, Vec<u8>)>,
}

fn align_up(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

impl ModelBuilder {
    /// A builder for a model with this config.
    pub fn new(config: Config) -> Self {
        ModelBuilder {
            config,
            tensors: Vec::new(),
            names: std::collections::HashSet::new(),
            vocab: None,
            optional: Vec::new(),
        }
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The config, to change (e.g. the attention cache's storage).
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// Adds an `f32` tensor with dimensions outermost first.
    pub fn add_f32(&mut self, name: &str, dims: &[u32], data: &[f32]) -> Result<()> {
        let elems: u64 = dims.iter().map(|&d| d as u64).product();
        if elems != data.len() as u64 {
            bail!(
                "tensor {name}: shape {dims:?} needs {elems} values, got {}",
                data.len()
            );
        }
        self.add_raw(name, Dtype::F32, dims, bytemuck::cast_slice(data).to_vec())
    }

    /// Adds a tensor from raw little-endian bytes.
    pub fn add_raw(&mut self, name: &str, dtype: Dtype, dims: &[u32], data: Vec<u8>) -> Result<()> {
        if name.is_empty() || name.len() > TensorName::LEN {
            bail!("tensor name {name:?} must be 1..={} bytes", TensorName::LEN);
        }
        if dims.is_empty() || dims.len() > 4 {
            bail!("tensor {name}: rank {} is not 1..=4", dims.len());
        }
        if !self.names.insert(name.to_string()) {
            bail!("tensor {name} added twice");
        }
        self.tensors.push(TensorEntry {
            name: name.to_string(),
            dtype,
            dims: dims.to_vec(),
            data,
        });
        Ok(())
    }

    /// Sets the vocabulary.
    pub fn set_vocab(&mut self, vocab: VocabData) {
        self.vocab = Some(vocab);
    }

    /// Sets the audio front end section ([`crate::audio::FrontEndSpec::to_bytes`]),
    /// marked optional: a reader without it still runs the model on
    /// feature rows.
    pub fn set_audio(&mut self, bytes: Vec<u8>) {
        self.optional.retain(|(k, _)| *k != SectionKind::Audio);
        self.optional.push((SectionKind::Audio, bytes));
    }

    /// Sets the class names (a labels section, `mote_core::labels`),
    /// marked optional; one name per class of the config.
    pub fn set_labels(&mut self, names: &[impl AsRef<str>]) -> Result<()> {
        let n = self.config.n_classes as usize;
        if names.len() != n {
            bail!("{} class names for a model of {n} classes", names.len());
        }
        let mut offsets = vec![0u32];
        let mut blob = Vec::new();
        for name in names {
            let name = name.as_ref();
            if name.is_empty()
                || name.len() > mote_core::labels::MAX_LABEL
                || name.chars().any(char::is_control)
            {
                bail!(
                    "class name {name:?}: 1..={} bytes without control characters",
                    mote_core::labels::MAX_LABEL
                );
            }
            blob.extend_from_slice(name.as_bytes());
            offsets.push(blob.len() as u32);
        }
        let mut bytes = Vec::new();
        bytes.extend((n as u32).to_le_bytes());
        bytes.extend(0u32.to_le_bytes());
        offsets.iter().for_each(|o| bytes.extend(o.to_le_bytes()));
        bytes.extend(blob);
        self.optional.retain(|(k, _)| *k != SectionKind::Labels);
        self.optional.push((SectionKind::Labels, bytes));
        Ok(())
    }

    /// A builder for a model derived from `m` (quantized, smoothed): its
    /// config, vocabulary, front end and class names, no tensors.
    pub fn like(m: &mote_core::Model) -> Self {
        let mut b = ModelBuilder::new(*m.config());
        if let Some(v) = VocabData::of(m) {
            b.set_vocab(v);
        }
        for kind in [SectionKind::Audio, SectionKind::Labels] {
            if let Some(bytes) = m.section(kind) {
                b.optional.push((kind, bytes.to_vec()));
            }
        }
        b
    }

    /// The file image.
    pub fn to_bytes(&self) -> Vec<u8> {
        let config: Vec<u8> = self
            .config
            .to_words()
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let vocab = self.vocab.as_ref().map(VocabData::to_bytes);
        let n_sections = 3 + usize::from(vocab.is_some()) + self.optional.len();
        let table_end = HEADER_LEN + SECTION_ENTRY_LEN * n_sections;
        let config_at = table_end;
        let tensors_at = config_at + config.len();
        let tensors_len = 8 + TENSOR_ENTRY_LEN * self.tensors.len();
        let vocab_at = tensors_at + tensors_len;
        let vocab_len = vocab.as_ref().map_or(0, Vec::len);
        let mut optional_at = Vec::with_capacity(self.optional.len());
        let mut end = vocab_at + vocab_len;
        for (_, bytes) in &self.optional {
            end = align_up(end, 4);
            optional_at.push(end);
            end += bytes.len();
        }
        let payload_at = align_up(end, ALIGN);
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut at = payload_at;
        for t in &self.tensors {
            offsets.push(at);
            at = align_up(at + t.data.len(), ALIGN);
        }
        let file_len = at;
        let mut out = vec![0u8; file_len];
        out[..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&(n_sections as u16).to_le_bytes());
        out[8..16].copy_from_slice(&(file_len as u64).to_le_bytes());
        let mut sections = vec![
            (SectionKind::Config, 0, config_at, config.len()),
            (SectionKind::Tensors, 0, tensors_at, tensors_len),
            (SectionKind::Payload, 0, payload_at, file_len - payload_at),
        ];
        if vocab.is_some() {
            sections.push((SectionKind::Vocab, 0, vocab_at, vocab_len));
        }
        for ((kind, bytes), at) in self.optional.iter().zip(&optional_at) {
            sections.push((*kind, SECTION_OPTIONAL, *at, bytes.len()));
            out[*at..*at + bytes.len()].copy_from_slice(bytes);
        }
        for (i, (kind, flags, off, len)) in sections.iter().enumerate() {
            let e = HEADER_LEN + i * SECTION_ENTRY_LEN;
            out[e..e + 4].copy_from_slice(&(*kind as u32).to_le_bytes());
            out[e + 4..e + 8].copy_from_slice(&flags.to_le_bytes());
            out[e + 8..e + 16].copy_from_slice(&(*off as u64).to_le_bytes());
            out[e + 16..e + 24].copy_from_slice(&(*len as u64).to_le_bytes());
        }
        out[config_at..config_at + config.len()].copy_from_slice(&config);
        out[tensors_at..tensors_at + 4].copy_from_slice(&(self.tensors.len() as u32).to_le_bytes());
        for (i, (t, off)) in self.tensors.iter().zip(&offsets).enumerate() {
            let e = tensors_at + 8 + i * TENSOR_ENTRY_LEN;
            out[e..e + t.name.len()].copy_from_slice(t.name.as_bytes());
            out[e + 24] = t.dtype as u8;
            out[e + 25] = t.dims.len() as u8;
            for (k, d) in t.dims.iter().enumerate() {
                out[e + 28 + 4 * k..e + 32 + 4 * k].copy_from_slice(&d.to_le_bytes());
            }
            out[e + 48..e + 56].copy_from_slice(&(*off as u64).to_le_bytes());
            out[e + 56..e + 64].copy_from_slice(&(t.data.len() as u64).to_le_bytes());
            out[*off..*off + t.data.len()].copy_from_slice(&t.data);
        }
        if let Some(v) = &vocab {
            out[vocab_at..vocab_at + v.len()].copy_from_slice(v);
        }
        seal(&mut out);
        out
    }

    /// Writes the file atomically ([`write_atomic`]) after reading it back:
    /// a model the reader would refuse is not written. Its error says what
    /// is wrong with the model (a config value, a tensor's shape), which came
    /// from the input it was built from (a checkpoint, a training config).
    pub fn write(&self, path: &Path) -> Result<u64> {
        let file = ModelFile::from_vec(self.to_bytes());
        mote_core::Model::from_bytes(file.bytes()).map_err(|e| {
            anyhow::anyhow!("the model is invalid ({} not written): {e}", path.display())
        })?;
        write_atomic(path, file.bytes())?;
        Ok(file.bytes().len() as u64)
    }
}

/// Recomputes the payload and header CRCs of a file image in place (after
/// the writer, or after a deliberate edit in a test).
pub fn seal(out: &mut [u8]) {
    let n_sections = u16::from_le_bytes([out[6], out[7]]) as usize;
    let table_end = (HEADER_LEN + SECTION_ENTRY_LEN * n_sections).min(out.len());
    let payload_crc = CRC32.checksum(&out[table_end..]);
    out[16..20].copy_from_slice(&payload_crc.to_le_bytes());
    let mut d = CRC32.digest();
    d.update(&out[..28]);
    d.update(&out[HEADER_LEN..table_end]);
    let header_crc = d.finalize();
    out[28..32].copy_from_slice(&header_crc.to_le_bytes());
}

/// What a path that is not a regular file is, for error messages.
fn describe(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// An output may be a new path or a regular file, which the rename replaces.
/// Anything else is refused: renaming onto a symbolic link replaces the
/// link (not its target), onto a device node (`/dev/null`) or a FIFO it
/// replaces the node, and a directory is no file to write.
pub fn check_output(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{}: cannot check the output", path.display())),
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) => bail!(
            "{}: is {}, not a regular file: refusing to replace it (write to a new path or a regular file)",
            path.display(),
            describe(m.file_type())
        ),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// failure never leaves a half-written file at `path`, and an output that
/// is one of the command's inputs (the same path, or a hard link to it) is
/// never truncated while the input is read or mapped: the input keeps its
/// old contents until it is closed.
///
/// The temporary file `.NAME.tmpPID` beside `path` is created new
/// (`O_EXCL`: never through a link planted there), synced before the
/// rename, removed on any error, and removed by SIGINT, SIGTERM or SIGHUP
/// while it exists. `path` must be a new path or a regular file
/// ([`check_output`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    check_output(path)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{}: output path has no file name", path.display()))?;
    let mut tmp = TempFile::create(dir, &name.to_string_lossy())
        .with_context(|| format!("writing {}", path.display()))?;
    let result = tmp
        .file
        .write_all(bytes)
        .and_then(|()| tmp.file.sync_all())
        .with_context(|| format!("writing {}", tmp.path.display()));
    result?;
    // The output may have been replaced while the bytes were written.
    check_output(path)?;
    tmp.rename_to(path)
        .with_context(|| format!("writing {}", path.display()))
}

/// A temporary output file: removed on drop unless renamed, and while it
/// exists, by the signal handlers of [`cleanup`].
struct TempFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    slot: Option<cleanup::Slot>,
    renamed: bool,
}

impl TempFile {
    /// Creates `.NAME.tmpPID` in `dir` (`.NAME.tmpPID.K` if that exists).
    fn create(dir: &Path, name: &str) -> std::io::Result<TempFile> {
        let pid = std::process::id();
        let mut k = 0u32;
        loop {
            let file_name = match k {
                0 => format!(".{name}.tmp{pid}"),
                _ => format!(".{name}.tmp{pid}.{k}"),
            };
            let path = dir.join(file_name);
            // Armed before it exists: a signal between the two removes
            // nothing, or the new file, never leaves it.
            let slot = cleanup::Slot::arm(&path);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        slot,
                        renamed: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 100 => {
                    drop(slot);
                    k += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn rename_to(&mut self, path: &Path) -> std::io::Result<()> {
        std::fs::rename(&self.path, path)?;
        self.renamed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
        // Disarmed last: the file is gone (or renamed) before the handler
        // stops looking after it.
        self.slot.take();
    }
}

/// Removing temporary files when SIGINT, SIGTERM or SIGHUP ends the process.
///
/// A fixed table of path buffers: the handler may only call
/// async-signal-safe functions (`unlink`, `signal`, `raise`) and must not
/// allocate or take a lock, so each slot's path is written before the slot
/// is armed and read by the handler only after it claimed the slot. The
/// handlers are installed once, on the first temporary file, for each
/// signal whose action is still the default (a signal ignored, as under
/// `nohup`, or handled by the program stays as it was). After removing the
/// files the handler restores the default action and raises the signal
/// again, so the process ends as it would have (killed by that signal).
#[cfg(unix)]
mod cleanup {
    use std::cell::UnsafeCell;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicU8, Ordering};

    /// Temporary files that can be looked after at once (more are written
    /// without the signal cleanup).
    const SLOTS: usize = 16;
    /// Longest path (with its NUL) a slot holds.
    const PATH_LEN: usize = 4096;

    const FREE: u8 = 0;
    const FILLING: u8 = 1;
    const ARMED: u8 = 2;
    const CLAIMED: u8 = 3;

    struct Entry {
        state: AtomicU8,
        path: UnsafeCell<[u8; PATH_LEN]>,
    }

    // SAFETY: `path` is written only by the one thread that moved `state`
    // from FREE to FILLING, and read only by whoever moved it from ARMED to
    // CLAIMED; the two never overlap (FILLING → ARMED is a release store
    // after the write, ARMED → CLAIMED an acquire exchange before the read).
    unsafe impl Sync for Entry {}

    #[allow(clippy::declare_interior_mutable_const)] // one fresh entry per slot
    const EMPTY: Entry = Entry {
        state: AtomicU8::new(FREE),
        path: UnsafeCell::new([0; PATH_LEN]),
    };
    static TABLE: [Entry; SLOTS] = [EMPTY; SLOTS];

    /// One armed slot of the table; disarmed on drop.
    pub(super) struct Slot(usize);

    impl Slot {
        /// Arms a slot for `path` (`None` when the table is full or the path
        /// does not fit: that file is then not removed by a signal).
        pub(super) fn arm(path: &Path) -> Option<Slot> {
            install();
            let bytes = path.as_os_str().as_bytes();
            if bytes.len() >= PATH_LEN || bytes.contains(&0) {
                return None;
            }
            for (i, e) in TABLE.iter().enumerate() {
                if e.state
                    .compare_exchange(FREE, FILLING, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    // SAFETY: FILLING: this thread alone touches the buffer
                    // (see `Entry`).
                    let buf = unsafe { &mut *e.path.get() };
                    buf[..bytes.len()].copy_from_slice(bytes);
                    buf[bytes.len()] = 0;
                    e.state.store(ARMED, Ordering::Release);
                    return Some(Slot(i));
                }
            }
            None
        }
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            let e = &TABLE[self.0];
            // CLAIMED only while a handler on another thread is removing the
            // file; it sets the slot back to ARMED right after.
            while e
                .state
                .compare_exchange(ARMED, FREE, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                std::hint::spin_loop();
            }
        }
    }

    /// Removes every armed file (async-signal-safe).
    pub(super) fn remove_armed() {
        remove_armed_under(&[]);
    }

    /// Removes the armed files whose path starts with `prefix` (all for an
    /// empty prefix; a test passes its own directory, so temporary files of
    /// other tests running meanwhile are left alone). Async-signal-safe: a
    /// byte comparison, `unlink`.
    pub(super) fn remove_armed_under(prefix: &[u8]) {
        for e in &TABLE {
            if e.state
                .compare_exchange(ARMED, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: CLAIMED: the buffer holds a NUL-terminated path
                // that no one writes until the slot is FREE again.
                unsafe {
                    let path = &*e.path.get();
                    if path.starts_with(prefix) {
                        libc::unlink(path.as_ptr().cast::<libc::c_char>());
                    }
                }
                e.state.store(ARMED, Ordering::Release);
            }
        }
    }

    extern "C" fn on_signal(signal: libc::c_int) {
        remove_armed();
        // SAFETY: `signal` and `raise` are async-signal-safe; the signal is
        // blocked while its handler runs, so the raised one is delivered,
        // with the default action, when this handler returns.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }

    fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                // SAFETY: sigaction on a zeroed struct (a valid "no flags,
                // empty mask" value) reads the current action, then installs
                // ours only where the current one is the default.
                unsafe {
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(signal, std::ptr::null(), &mut old) != 0
                        || old.sa_sigaction != libc::SIG_DFL
                    {
                        continue;
                    }
                    let mut new: libc::sigaction = std::mem::zeroed();
                    new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                    libc::sigemptyset(&mut new.sa_mask);
                    libc::sigaction(signal, &new, std::ptr::null_mut());
                }
            }
        });
    }
}

/// Without Unix signals: no cleanup beyond the error path's.
#[cfg(not(unix))]
mod cleanup {
    pub(super) struct Slot;
    impl Slot {
        pub(super) fn arm(_: &std::path::Path) -> Option<Slot> {
            None
        }
    }
    pub(super) fn remove_armed() {}
    pub(super) fn remove_armed_under(_: &[u8]) {}
}

/// A model image, 16-byte aligned as `Model::from_bytes` requires: a file
/// mapped in place ([`ModelFile::read`]; the format is made to be read where
/// it lies, so memory is the pages touched) or bytes in memory.
pub struct ModelFile {
    data: Data,
}

enum Data {
    Owned { buf: Vec<u128>, len: usize },
    Mapped(memmap2::Mmap),
}

impl ModelFile {
    /// Copies bytes into an aligned buffer.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let mut buf = vec![0u128; bytes.len().div_ceil(16)];
        bytemuck::cast_slice_mut::<u128, u8>(&mut buf)[..bytes.len()].copy_from_slice(&bytes);
        ModelFile {
            data: Data::Owned {
                buf,
                len: bytes.len(),
            },
        }
    }

    /// Maps a model file. Only a regular file is accepted, and that is
    /// known before a byte is read: the path is opened without blocking (a
    /// FIFO does not wait for a writer) and checked with `fstat`; a
    /// directory, FIFO, device (`/dev/zero`) or socket is refused at once.
    pub fn read(path: &Path) -> Result<Self> {
        let mut open = std::fs::OpenOptions::new();
        open.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            open.custom_flags(libc::O_NONBLOCK);
        }
        let file = match open.open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                bail!("{}: no such file", path.display())
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let meta = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        let t = meta.file_type();
        if t.is_dir() {
            bail!("{} is a directory, not a .mote model", path.display());
        }
        if !t.is_file() {
            bail!(
                "{} is {}, not a regular file: a model is read in place from a file",
                path.display(),
                describe(t)
            );
        }
        if meta.len() == 0 {
            bail!("{}: not a .mote model: the file is empty", path.display());
        }
        usize::try_from(meta.len())
            .ok()
            .filter(|&n| n <= isize::MAX as usize)
            .with_context(|| {
                format!(
                    "{}: {} bytes do not fit this machine's address space",
                    path.display(),
                    meta.len()
                )
            })?;
        // SAFETY: the map is read-only and private to this process. Another
        // process changing or truncating the file while it is mapped could
        // change bytes under the borrow (or end the process with SIGBUS) —
        // the usual rule of mapped input: do not edit a model while it runs.
        // Every output is written to a new file and renamed over the old
        // name ([`write_atomic`]), so this program never changes a file it
        // has mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .with_context(|| format!("mapping {}", path.display()))?;
        Ok(ModelFile {
            data: Data::Mapped(map),
        })
    }

    /// True when the bytes are a mapped file (not a copy in memory).
    pub fn is_mapped(&self) -> bool {
        matches!(self.data, Data::Mapped(_))
    }

    /// The file bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Owned { buf, len } => &bytemuck::cast_slice::<u128, u8>(buf)[..*len],
            Data::Mapped(m) => m,
        }
    }

    /// The file bytes, mutable (for tests that corrupt them; a mapped file
    /// is copied into memory first, the file itself never changes).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        if let Data::Mapped(m) = &self.data {
            *self = ModelFile::from_vec(m.to_vec());
        }
        match &mut self.data {
            Data::Owned { buf, len } => &mut bytemuck::cast_slice_mut::<u128, u8>(buf)[..*len],
            Data::Mapped(_) => &mut [],
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mote-writer-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// What a signal handler does, called directly: every armed temporary
    /// file is removed, and a disarmed one is not (the end-to-end test with
    /// a real SIGTERM is `quantize/tests/cli_doors.rs`).
    #[test]
    fn armed_temporary_files_are_removed_by_the_signal_cleanup() {
        let d = scratch("cleanup");
        let armed = d.join(".a.mote.tmp1");
        let kept = d.join(".b.mote.tmp1");
        std::fs::write(&armed, b"x").unwrap();
        std::fs::write(&kept, b"x").unwrap();
        let slot = cleanup::Slot::arm(&armed);
        assert!(slot.is_some() || cfg!(not(unix)));
        drop(cleanup::Slot::arm(&kept));
        let mine = d.as_os_str().as_encoded_bytes();
        cleanup::remove_armed_under(mine);
        if cfg!(unix) {
            assert!(!armed.exists(), "an armed temporary file survived");
        }
        assert!(kept.exists(), "a disarmed file was removed");
        drop(slot);
        std::fs::write(&armed, b"x").unwrap();
        cleanup::remove_armed_under(mine);
        assert!(armed.exists(), "a disarmed slot still removes its file");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn outputs_replace_only_regular_files() {
        let d = scratch("outputs");
        let file = d.join("m.mote");
        write_atomic(&file, b"one").unwrap();
        write_atomic(&file, b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        let err = write_atomic(&d, b"x").unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        #[cfg(unix)]
        {
            let link = d.join("link.mote");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&file, &link).unwrap();
            let err = write_atomic(&link, b"x").unwrap_err().to_string();
            assert!(err.contains("is a symbolic link"), "{err}");
            assert!(std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink());
            assert_eq!(std::fs::read(&file).unwrap(), b"two");
        }
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp"))
            .collect();
        assert!(left.is_empty(), "temporary files left: {left:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_read_model_is_mapped_and_copied_only_to_change_it() {
        let d = scratch("mapped");
        let p = d.join("m.mote");
        write_atomic(&p, &[7u8; 64]).unwrap();
        let mut f = ModelFile::read(&p).unwrap();
        assert!(f.is_mapped());
        assert_eq!(f.bytes().as_ptr() as usize % 16, 0);
        f.bytes_mut()[0] = 1;
        assert!(!f.is_mapped());
        assert_eq!(f.bytes()[..2], [1, 7]);
        assert_eq!(std::fs::read(&p).unwrap()[0], 7, "the file changed");
        let _ = std::fs::remove_dir_all(&d);
    }
}
