//! Checkpoint import, one file per format, each to a [`ModelBuilder`] in f32:
//!
//! - [`bert`]: Hugging Face BERT-family safetensors with `config.json`
//!   (and `tokenizer.json` or `vocab.txt`);
//! - [`llama`]: the Llama mapping of a GGUF file, read by the container
//!   reader [`gguf`].
//!
//! This file holds what they share: the dispatch by what a path holds, the
//! rule for the checkpoint's tensors (every one is used, or it is on the
//! format's short list of tensors no runtime needs and is reported as
//! skipped), shape checks that name the checkpoint's own tensor, and the
//! config check that names the checkpoint's own key.

pub mod bert;
pub mod gguf;
pub mod llama;

pub use bert::import_bert_dir;
pub use llama::import_gguf;

use crate::writer::ModelBuilder;
use anyhow::{bail, Context, Result};
use mote_core::config::CONFIG_WORDS;
use mote_core::{Config, Error};
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

/// An imported checkpoint.
pub struct Imported {
    /// The model, every tensor in f32.
    pub model: ModelBuilder,
    /// Checkpoint tensors left out, in checkpoint order: only ones on the
    /// format's list of tensors a runtime never needs (BERT's
    /// `embeddings.position_ids`, `pooler.*`). Any other unused tensor is
    /// an error.
    pub skipped: Vec<String>,
}

/// Imports a checkpoint (see [`import_checkpoint`]) and keeps the model.
pub fn import(path: &Path) -> Result<ModelBuilder> {
    Ok(import_checkpoint(path)?.model)
}

/// Imports what `path` holds: a Hugging Face checkpoint directory
/// (`config.json` and `model.safetensors`), a `.safetensors` file inside
/// one, or a GGUF file (known by its magic, whatever its name).
pub fn import_checkpoint(path: &Path) -> Result<Imported> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{} does not exist", path.display())
        }
        Err(e) => bail!("{}: cannot read it: {e}", path.display()),
    };
    if meta.is_dir() {
        return bert::import_bert(path);
    }
    if !meta.is_file() {
        // A FIFO or a device (`/dev/zero`) would be read without end.
        bail!(
            "{}: not a regular file or a directory; a checkpoint is a file or a directory",
            path.display()
        );
    }
    let mut magic = [0u8; 4];
    let got = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .with_context(|| format!("reading {}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match (&magic[..got], ext) {
        (b"GGUF", _) => llama::import_llama(&gguf::Gguf::read(path)?),
        (b"MOTE", _) => bail!(
            "{} is already a .mote model: there is nothing to import",
            path.display()
        ),
        (_, "safetensors") => {
            bert::import_bert(path.parent().context("safetensors file has no directory")?)
        }
        (_, "gguf") => bail!("{}: not a GGUF file (bad magic)", path.display()),
        (_, "mote") => bail!(
            "{}: not a .mote model (empty, or no MOTE magic) and not a checkpoint",
            path.display()
        ),
        _ => bail!(
            "{}: expected a checkpoint directory (config.json and model.safetensors), \
             a .safetensors file inside one, or a GGUF file",
            path.display()
        ),
    }
}

/// The checkpoint's tensors and which of them an importer read.
pub(crate) struct Uses {
    /// Every tensor name, in checkpoint order.
    names: Vec<String>,
    used: HashSet<String>,
}

impl Uses {
    pub(crate) fn new(names: Vec<String>) -> Uses {
        Uses {
            names,
            used: HashSet::new(),
        }
    }

    /// Marks a tensor read.
    pub(crate) fn mark(&mut self, name: &str) {
        self.used.insert(name.to_string());
    }

    /// The tensors left out that `skippable` allows, or an error naming the
    /// others (`source`: the file, `importer`: the mapping).
    pub(crate) fn finish(
        self,
        source: &str,
        importer: &str,
        skippable: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        let (skipped, refused): (Vec<String>, Vec<String>) = self
            .names
            .into_iter()
            .filter(|n| !self.used.contains(n))
            .partition(|n| skippable(n));
        if !refused.is_empty() {
            const SHOWN: usize = 6;
            let more = match refused.len().saturating_sub(SHOWN) {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            bail!(
                "{source}: {} tensor(s) the {importer} import does not use: {}{more}; \
                 a checkpoint with parts Mote does not run is refused, not imported without them",
                refused.len(),
                refused[..refused.len().min(SHOWN)].join(", "),
            );
        }
        Ok(skipped)
    }
}

/// Checks a checkpoint tensor's shape against the one the config implies.
pub(crate) fn check_shape(
    source: &str,
    name: &str,
    got: &[u32],
    want: &[u32],
    config: &str,
) -> Result<()> {
    if got != want {
        bail!("{source}: {name} has shape {got:?}, {config} implies {want:?}");
    }
    Ok(())
}

/// The reader's own checks of `cfg`, before any tensor is read; an error
/// names the checkpoint's key for the field (`keys`: Mote field → key).
pub(crate) fn check_config(cfg: &Config, source: &str, keys: &[(&str, &str)]) -> Result<()> {
    let words: [u32; CONFIG_WORDS] = cfg.to_words();
    match Config::from_words(&words) {
        Ok(_) => Ok(()),
        Err(Error::BadConfig { field, value }) => {
            let shown = if matches!(field, "rope_theta" | "norm_eps") {
                f32::from_bits(value).to_string()
            } else {
                value.to_string()
            };
            match keys.iter().find(|(f, _)| *f == field) {
                Some((_, key)) => {
                    bail!("{source}: {key} = {shown} is not a valid model (Mote's {field})")
                }
                None => bail!("{source}: the model's {field} = {shown} is not valid"),
            }
        }
        Err(e) => bail!("{source}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_tensors_are_refused_by_name_unless_skippable() {
        let names = ["a", "b", "pooler.x", "c"].map(String::from).to_vec();
        let mut u = Uses::new(names.clone());
        u.mark("a");
        let err = u
            .finish("f", "test", |n| n.starts_with("pooler."))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("2 tensor(s)") && err.contains("b, c"), "{err}");
        let mut u = Uses::new(names);
        for n in ["a", "b", "c"] {
            u.mark(n);
        }
        let skipped = u.finish("f", "test", |n| n.starts_with("pooler."));
        assert_eq!(skipped.ok(), Some(vec!["pooler.x".to_string()]));
    }

    #[test]
    fn a_path_that_is_not_a_file_or_directory_is_refused_at_once() {
        let err = import_checkpoint(Path::new("/dev/zero"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
