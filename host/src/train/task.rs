//! The four tasks: their data, model config, batches and scoring.

use super::data::{self, Digit, Split};
use super::kws::{self, Kws};
use super::net::{Input, Net, Rng};
use super::{Score, TaskKind, TrainConfig};
use crate::family::{self, Shape};
use crate::tokenizer::Tokenizer;
use crate::writer::VocabData;
use anyhow::{ensure, Context, Result};
use candle_core::{Device, Tensor};
use mote_core::config::{Architecture, NO_TOKEN};
use mote_core::vocab::{PreTokenizer, TokenizerKind, FLAG_LOWERCASE, FLAG_STRIP_ACCENTS};
use mote_core::Config;

/// Digits are cut into square patches of this many pixels a side.
pub const PATCH: usize = 2;
/// Values per patch.
pub const PATCH_DIM: usize = PATCH * PATCH;

/// One model input, as the device gets it.
#[derive(Debug, Clone)]
pub enum Example {
    /// Feature rows, flattened (`rows × input_dim`).
    Features(Vec<f32>),
    /// Token ids.
    Tokens(Vec<u32>),
}

/// A scored item: one or more inputs whose class logits are averaged, or
/// (language model) one window whose next-token predictions are scored.
struct Item {
    inputs: Vec<Example>,
    label: Option<usize>,
}

/// A prepared task.
pub struct Task {
    data: Data,
    /// Evaluate at most this many items per split (0: all).
    eval_limit: usize,
}

enum Data {
    /// 8×8 digits.
    Digits {
        /// Per split.
        splits: [Vec<Digit>; 3],
        /// Random shifts while training.
        augment: bool,
    },
    /// Text classification.
    Text {
        /// Class names.
        classes: Vec<String>,
        /// The trained WordPiece vocabulary.
        vocab: VocabData,
        /// Its tokenizer.
        tokenizer: Box<Tokenizer>,
        /// Token ids and label per article, per split.
        splits: [Vec<(Vec<u32>, usize)>; 3],
        /// Window length.
        window: usize,
        /// Windows averaged per article.
        windows: usize,
    },
    /// Keyword spotting: clips, noise and the front end, and the
    /// evaluation splits' feature rows (computed once).
    Audio {
        /// The data set.
        kws: Box<Kws>,
        /// Validation and test windows' features and labels.
        eval: [Vec<(Vec<f32>, usize)>; 2],
        /// Augment while training.
        augment: bool,
    },
    /// Byte-level language model.
    Bytes {
        /// The byte-level vocabulary (256 tokens, no merges).
        vocab: VocabData,
        /// Byte streams per split (lines joined with `\n`).
        splits: [Vec<u32>; 3],
        /// Window length.
        window: usize,
    },
}

fn split_index(s: Split) -> usize {
    s as usize
}

/// The digit's 2×2 patches, row-major, as `16 × 4` values in `[0, 1]`,
/// optionally shifted by `(dx, dy)` pixels (zeros shifted in).
pub fn digit_patches(pixels: &[u8; 64], dx: i32, dy: i32) -> Vec<f32> {
    let px = |x: i32, y: i32| -> f32 {
        let (sx, sy) = (x - dx, y - dy);
        if (0..8).contains(&sx) && (0..8).contains(&sy) {
            pixels[(sy * 8 + sx) as usize] as f32 / 16.0
        } else {
            0.0
        }
    };
    let n = 8 / PATCH;
    let mut out = Vec::with_capacity(64);
    for py in 0..n {
        for pxi in 0..n {
            for y in 0..PATCH {
                for x in 0..PATCH {
                    out.push(px((pxi * PATCH + x) as i32, (py * PATCH + y) as i32));
                }
            }
        }
    }
    out
}

/// GPT-2's byte-to-unicode alphabet: the token text of each byte.
pub fn byte_tokens() -> Vec<(Vec<u8>, u8)> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            let c = if printable(b) {
                b
            } else {
                extra += 1;
                255 + extra
            };
            let s = char::from_u32(c).unwrap_or('?').to_string();
            (s.into_bytes(), mote_core::vocab::kind::NORMAL)
        })
        .collect()
}

/// A WordPiece vocabulary of about `size` tokens trained on `texts` with
/// BERT's uncased normalisation and pre-tokenizer.
pub fn train_wordpiece<'t>(
    texts: impl Iterator<Item = &'t str> + Send,
    size: usize,
) -> Result<VocabData> {
    use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
    use tokenizers::models::TrainerWrapper;
    use tokenizers::normalizers::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::{AddedToken, TokenizerImpl};
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut trainer: TrainerWrapper = WordPieceTrainer::builder()
        .vocab_size(size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(
            specials
                .iter()
                .map(|s| AddedToken::from(*s, true))
                .collect(),
        )
        .build()
        .into();
    let mut tk: tokenizers::Tokenizer = TokenizerImpl::<
        tokenizers::ModelWrapper,
        tokenizers::NormalizerWrapper,
        tokenizers::PreTokenizerWrapper,
        tokenizers::PostProcessorWrapper,
        tokenizers::DecoderWrapper,
    >::new(WordPiece::default().into())
    .into();
    tk.with_normalizer(Some(BertNormalizer::default()));
    tk.with_pre_tokenizer(Some(BertPreTokenizer));
    tk.train(&mut trainer, texts)
        .map_err(|e| anyhow::anyhow!("training the WordPiece vocabulary: {e}"))?;
    let mut tokens: Vec<(String, u32)> = tk.get_vocab(false).into_iter().collect();
    tokens.sort_by_key(|(_, id)| *id);
    ensure!(
        tokens
            .iter()
            .enumerate()
            .all(|(i, (_, id))| *id as usize == i),
        "trained vocabulary ids are not dense"
    );
    let unk = tokens
        .iter()
        .position(|(t, _)| t == "[UNK]")
        .context("no [UNK] token")? as u32;
    Ok(VocabData {
        kind: TokenizerKind::WordPiece,
        flags: FLAG_LOWERCASE | FLAG_STRIP_ACCENTS,
        pre_tokenizer: PreTokenizer::Bert,
        tokens: tokens
            .into_iter()
            .map(|(t, _)| {
                let kind = if specials.contains(&t.as_str()) {
                    mote_core::vocab::kind::SPECIAL
                } else {
                    mote_core::vocab::kind::NORMAL
                };
                (t.into_bytes(), kind)
            })
            .collect(),
        merges: Vec::new(),
        unk_id: unk,
        chat_template: String::new(),
    })
}

/// The tokenizer a `.mote` file with this vocabulary gets (the one the CLI uses).
pub fn tokenizer_of(vocab: &VocabData, cfg: &Config) -> Result<Tokenizer> {
    let bytes = vocab.to_bytes();
    let v = mote_core::Vocab::parse(&bytes, cfg.vocab_size).map_err(|e| anyhow::anyhow!("{e}"))?;
    Tokenizer::from_model(&v, cfg)
}

fn limit<T>(mut v: Vec<T>, n: Option<usize>) -> Vec<T> {
    if let Some(n) = n {
        v.truncate(n);
    }
    v
}

impl Task {
    /// Loads the data (and trains the vocabulary) a config needs.
    pub fn prepare(cfg: &TrainConfig) -> Result<Task> {
        Task::prepare_with(cfg, None)
    }

    /// [`Task::prepare`], tokenizing text with `vocab` (a trained model's own)
    /// instead of training a new vocabulary.
    pub fn prepare_with(cfg: &TrainConfig, vocab: Option<VocabData>) -> Result<Task> {
        let spec = &cfg.data;
        let data = match cfg.task {
            TaskKind::Digits => {
                let mut splits: [Vec<Digit>; 3] = Default::default();
                for d in data::digits()? {
                    splits[split_index(Split::of(&d.pixels))].push(d);
                }
                splits[0] = limit(std::mem::take(&mut splits[0]), spec.train_limit);
                Data::Digits {
                    splits,
                    augment: spec.augment,
                }
            }
            TaskKind::BbcNews => {
                let (classes, articles) = data::bbc_news()?;
                let mut by_split: [Vec<data::Article>; 3] = Default::default();
                for a in articles {
                    by_split[split_index(Split::of(a.text.as_bytes()))].push(a);
                }
                by_split[0] = limit(std::mem::take(&mut by_split[0]), spec.train_limit);
                // The vocabulary is learnt from the training split only.
                let vocab = match vocab {
                    Some(v) => v,
                    None => train_wordpiece(
                        by_split[0].iter().map(|a| a.text.as_str()),
                        cfg.model.vocab_size as usize,
                    )?,
                };
                let mut model_cfg =
                    text_config(cfg, vocab.tokens.len() as u32, classes.len() as u32);
                model_cfg.max_seq = cfg.model.max_seq;
                let tok = tokenizer_of(&vocab, &model_cfg)?;
                let mut splits: [Vec<(Vec<u32>, usize)>; 3] = Default::default();
                for (s, arts) in splits.iter_mut().zip(&by_split) {
                    for a in arts {
                        let ids = tok.encode(&a.text)?;
                        if !ids.is_empty() {
                            s.push((ids, a.label));
                        }
                    }
                }
                Data::Text {
                    classes,
                    vocab,
                    tokenizer: Box::new(tok),
                    splits,
                    window: cfg.model.max_seq as usize,
                    windows: spec.windows.max(1),
                }
            }
            TaskKind::Kws => {
                let kws = Kws::load(&kws::data_dir())?;
                let mut scratch = Box::new(mote_core::audio::Scratch::new());
                let mut eval: [Vec<(Vec<f32>, usize)>; 2] = Default::default();
                for (e, split) in eval.iter_mut().zip([Split::Validation, Split::Test]) {
                    for (pcm, label) in kws.eval_windows(split) {
                        e.push((kws.features(&mut scratch, &pcm)?, label));
                    }
                }
                Data::Audio {
                    kws: Box::new(kws),
                    eval,
                    augment: spec.augment,
                }
            }
            TaskKind::Austen => {
                let novels = data::austen()?;
                let mut splits: [Vec<u32>; 3] = Default::default();
                for n in &novels {
                    for s in [Split::Train, Split::Validation, Split::Test] {
                        let text = data::novel_split(n, s).join("\n") + "\n";
                        splits[split_index(s)].extend(text.bytes().map(u32::from));
                    }
                }
                splits[0] = limit(std::mem::take(&mut splits[0]), spec.train_limit);
                Data::Bytes {
                    vocab: byte_vocab(),
                    splits,
                    window: cfg.model.max_seq as usize,
                }
            }
        };
        Ok(Task {
            data,
            eval_limit: spec.eval_limit,
        })
    }

    /// The architecture to train.
    pub fn config(&self, cfg: &TrainConfig) -> Result<Config> {
        Ok(match &self.data {
            Data::Digits { .. } => {
                let mut c = text_config(cfg, 1, 10);
                c.input_dim = PATCH_DIM as u32;
                c.max_seq = (64 / PATCH_DIM) as u32;
                c
            }
            Data::Text { vocab, classes, .. } => {
                text_config(cfg, vocab.tokens.len() as u32, classes.len() as u32)
            }
            Data::Audio { kws, .. } => {
                let fe = kws.front_end()?;
                let mut c = text_config(cfg, 1, kws::CLASSES.len() as u32);
                c.input_dim = fe.n_mels;
                c.max_seq = fe.window_frames;
                c
            }
            Data::Bytes { .. } => {
                let mut c = text_config(cfg, 256, 0);
                c.arch = Architecture::Decoder;
                c.causal = true;
                c.tied_embeddings = true;
                c
            }
        })
    }

    /// The vocabulary stored in the model, if the task has one.
    pub fn vocab(&self) -> Option<VocabData> {
        match &self.data {
            Data::Digits { .. } | Data::Audio { .. } => None,
            Data::Text { vocab, .. } | Data::Bytes { vocab, .. } => Some(vocab.clone()),
        }
    }

    /// The sections a shipped model of this task carries beside its
    /// tensors: class names, and the audio front end.
    pub fn add_sections(&self, b: &mut crate::ModelBuilder) -> Result<()> {
        if let Data::Audio { kws, .. } = &self.data {
            b.set_audio(kws.section.clone());
        }
        let classes = self.classes();
        if !classes.is_empty() {
            b.set_labels(&classes)?;
        }
        Ok(())
    }

    /// Class names (empty for the language model).
    pub fn classes(&self) -> Vec<String> {
        match &self.data {
            Data::Digits { .. } => (0..10).map(|d| d.to_string()).collect(),
            Data::Text { classes, .. } => classes.clone(),
            Data::Audio { .. } => kws::CLASSES.iter().map(|c| c.to_string()).collect(),
            Data::Bytes { .. } => Vec::new(),
        }
    }

    /// Number of items in a split.
    pub fn len(&self, split: Split) -> usize {
        let i = split_index(split);
        match &self.data {
            Data::Digits { splits, .. } => splits[i].len(),
            Data::Text { splits, .. } => splits[i].len(),
            Data::Audio { kws, eval, .. } => match split {
                Split::Train => kws.splits[0].len(),
                Split::Validation => eval[0].len(),
                Split::Test => eval[1].len(),
            },
            Data::Bytes { splits, .. } => splits[i].len(),
        }
    }

    /// True when the training split is empty.
    pub fn is_empty(&self) -> bool {
        self.len(Split::Train) == 0
    }

    /// A random training batch: inputs and targets.
    pub fn batch(&self, rng: &mut Rng, n: usize) -> Result<(Input, Tensor)> {
        let dev = &Device::Cpu;
        ensure!(!self.is_empty(), "the training split is empty");
        match &self.data {
            Data::Digits { splits, augment } => {
                let train = &splits[0];
                let mut feats = Vec::with_capacity(n * 64);
                let mut labels = Vec::with_capacity(n);
                for _ in 0..n {
                    let d = &train[rng.below(train.len())];
                    let (dx, dy) = if *augment {
                        (rng.below(3) as i32 - 1, rng.below(3) as i32 - 1)
                    } else {
                        (0, 0)
                    };
                    feats.extend(digit_patches(&d.pixels, dx, dy));
                    labels.push(d.label as u32);
                }
                let rows = 64 / PATCH_DIM;
                Ok((
                    Input::Features(Tensor::from_vec(feats, (n, rows, PATCH_DIM), dev)?),
                    Tensor::from_vec(labels, n, dev)?,
                ))
            }
            Data::Text { splits, window, .. } => {
                let train = &splits[0];
                let mut ids: Vec<u32> = Vec::with_capacity(n * window);
                let mut labels = Vec::with_capacity(n);
                for _ in 0..n {
                    let (t, label) = &train[rng.below(train.len())];
                    // A random window; articles shorter than a window repeat.
                    let start = rng.below(t.len().saturating_sub(*window) + 1);
                    ids.extend(t.iter().cycle().skip(start).take(*window));
                    labels.push(*label as u32);
                }
                Ok((
                    Input::Tokens(Tensor::from_vec(ids, (n, *window), dev)?),
                    Tensor::from_vec(labels, n, dev)?,
                ))
            }
            Data::Audio { kws, augment, .. } => {
                let fe = kws.front_end()?;
                let (frames, width) = (fe.window_frames as usize, fe.n_mels as usize);
                // Seeds drawn in order, windows made in parallel: the same
                // batch for the same seed on any number of threads.
                let seeds: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
                use rayon::prelude::*;
                let made: Vec<Result<(Vec<f32>, u32)>> = seeds
                    .par_iter()
                    .map_init(
                        || Box::new(mote_core::audio::Scratch::new()),
                        |scratch, &seed| {
                            let mut r = Rng(seed);
                            let (pcm, label) = if *augment {
                                kws.train_example(&mut r)
                            } else {
                                let c = &kws.splits[0][r.below(kws.splits[0].len())];
                                (Kws::centred(&c.pcm), c.label)
                            };
                            let mut f = kws.features(scratch, &pcm)?;
                            if *augment {
                                kws::spec_augment(&mut f, width, &mut r);
                            }
                            Ok((f, label as u32))
                        },
                    )
                    .collect();
                let mut feats = Vec::with_capacity(n * frames * width);
                let mut labels = Vec::with_capacity(n);
                for m in made {
                    let (f, l) = m?;
                    feats.extend(f);
                    labels.push(l);
                }
                Ok((
                    Input::Features(Tensor::from_vec(feats, (n, frames, width), dev)?),
                    Tensor::from_vec(labels, n, dev)?,
                ))
            }
            Data::Bytes { splits, window, .. } => {
                let train = &splits[0];
                ensure!(
                    train.len() > window + 1,
                    "training text shorter than a window"
                );
                let mut x = Vec::with_capacity(n * window);
                let mut y = Vec::with_capacity(n * window);
                for _ in 0..n {
                    let s = rng.below(train.len() - window - 1);
                    x.extend_from_slice(&train[s..s + window]);
                    y.extend_from_slice(&train[s + 1..s + window + 1]);
                }
                Ok((
                    Input::Tokens(Tensor::from_vec(x, (n, *window), dev)?),
                    Tensor::from_vec(y, (n, *window), dev)?,
                ))
            }
        }
    }

    /// The items of a split, as the device would be given them.
    fn items(&self, split: Split, limit: usize) -> Vec<Item> {
        let i = split_index(split);
        let mut items: Vec<Item> = match &self.data {
            Data::Digits { splits, .. } => splits[i]
                .iter()
                .map(|d| Item {
                    inputs: vec![Example::Features(digit_patches(&d.pixels, 0, 0))],
                    label: Some(d.label as usize),
                })
                .collect(),
            Data::Text {
                splits,
                window,
                windows,
                ..
            } => splits[i]
                .iter()
                .map(|(t, label)| Item {
                    inputs: t
                        .chunks(*window)
                        .take(*windows)
                        .enumerate()
                        // A short tail window is dropped unless it is the only one.
                        .filter(|(k, c)| *k == 0 || c.len() * 4 >= *window)
                        .map(|(_, c)| Example::Tokens(c.to_vec()))
                        .collect(),
                    label: Some(*label),
                })
                .collect(),
            Data::Audio { eval, .. } => {
                let e = match split {
                    Split::Validation => &eval[0],
                    Split::Test => &eval[1],
                    Split::Train => &eval[0][..0],
                };
                e.iter()
                    .map(|(f, label)| Item {
                        inputs: vec![Example::Features(f.clone())],
                        label: Some(*label),
                    })
                    .collect()
            }
            Data::Bytes { splits, window, .. } => splits[i]
                .chunks_exact(*window)
                .map(|c| Item {
                    inputs: vec![Example::Tokens(c.to_vec())],
                    label: None,
                })
                .collect(),
        };
        if limit > 0 && items.len() > limit {
            // An evenly spaced subset, the same every time.
            let step = items.len() as f64 / limit as f64;
            items = (0..limit)
                .map(|k| {
                    std::mem::replace(
                        &mut items[(k as f64 * step) as usize],
                        Item {
                            inputs: vec![],
                            label: None,
                        },
                    )
                })
                .collect();
        }
        items
    }

    /// Up to `n` evenly spaced labelled items of a split, each with a
    /// printable description (a digit as 8 lines of text art, an article's
    /// first words as the tokenizer gives them back), its inputs and label.
    pub fn samples(&self, split: Split, n: usize) -> Result<Vec<(String, Vec<Example>, usize)>> {
        let items = self.items(split, n);
        let mut out = Vec::new();
        for item in items {
            let Some(label) = item.label else { continue };
            let desc = match (&self.data, item.inputs.first()) {
                (Data::Digits { .. }, Some(Example::Features(f))) => {
                    // Undo the patch order to draw the digit row by row.
                    let mut px = [0f32; 64];
                    let per = 8 / PATCH;
                    for (k, v) in f.iter().enumerate() {
                        let (p, i) = (k / PATCH_DIM, k % PATCH_DIM);
                        let (y, x) = ((p / per) * PATCH + i / PATCH, (p % per) * PATCH + i % PATCH);
                        px[y * 8 + x] = *v;
                    }
                    px.chunks(8)
                        .map(|r| {
                            r.iter()
                                .map(|&v| [' ', '.', ':', '#'][((v * 3.0).round() as usize).min(3)])
                                .collect::<String>()
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                }
                (Data::Text { tokenizer, .. }, Some(Example::Tokens(ids))) => {
                    format!("{} …", tokenizer.decode(&ids[..ids.len().min(24)])?)
                }
                _ => String::new(),
            };
            out.push((desc, item.inputs, label));
        }
        Ok(out)
    }

    /// Scores a split with `run` (one input → class logits, or one row of
    /// next-token logits per input token).
    pub fn score(
        &self,
        split: Split,
        variant: &str,
        run: &mut dyn FnMut(&Example) -> Result<Vec<Vec<f32>>>,
    ) -> Result<Score> {
        let limit = self.eval_limit;
        let (mut correct, mut nll, mut count) = (0usize, 0f64, 0usize);
        let items = self.items(split, limit);
        for item in &items {
            match item.label {
                Some(label) => {
                    let avg = average_logits(&item.inputs, run)?;
                    nll += -log_softmax_at(&avg, label);
                    let best = avg
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map(|(i, _)| i);
                    correct += (best == Some(label)) as usize;
                    count += 1;
                }
                None => {
                    let Some(Example::Tokens(ids)) = item.inputs.first() else {
                        continue;
                    };
                    let rows = run(&item.inputs[0])?;
                    for (row, &next) in rows.iter().zip(&ids[1..]) {
                        let r: Vec<f64> = row.iter().map(|&v| v as f64).collect();
                        nll += -log_softmax_at(&r, next as usize);
                        count += 1;
                    }
                }
            }
        }
        ensure!(count > 0, "nothing to score in the {} split", split.name());
        let loss = nll / count as f64;
        let lm = matches!(self.data, Data::Bytes { .. });
        Ok(Score {
            variant: variant.to_string(),
            metric: if lm {
                loss.exp()
            } else {
                correct as f64 / count as f64
            },
            loss,
            items: if lm { count } else { items.len() },
        })
    }

    /// Scores the training framework's own forward pass (f32, or with QAT's fake quantization).
    pub fn evaluate_net(&self, net: &Net, split: Split, qat: bool) -> Result<Score> {
        let w = net.weights(qat)?;
        let dev = &Device::Cpu;
        self.score(
            split,
            if qat { "candle QAT" } else { "candle f32" },
            &mut |ex| {
                let input = match ex {
                    Example::Features(f) => {
                        let width = (net.cfg.input_dim as usize).max(1);
                        Input::Features(Tensor::from_vec(
                            f.clone(),
                            (1, f.len() / width, width),
                            dev,
                        )?)
                    }
                    Example::Tokens(ids) => {
                        Input::Tokens(Tensor::from_vec(ids.clone(), (1, ids.len()), dev)?)
                    }
                };
                let logits = net.logits(&w, &input, qat)?;
                let logits = logits.squeeze(0)?;
                Ok(if logits.rank() == 2 {
                    logits.to_vec2::<f32>()?
                } else {
                    vec![logits.to_vec1::<f32>()?]
                })
            },
        )
    }
}

/// The mean of the class logits `run` gives for each of `inputs` (an
/// article's windows; one image).
pub fn average_logits(
    inputs: &[Example],
    run: &mut dyn FnMut(&Example) -> Result<Vec<Vec<f32>>>,
) -> Result<Vec<f64>> {
    let mut avg: Vec<f64> = Vec::new();
    for ex in inputs {
        let rows = run(ex)?;
        let l = rows.first().context("no logits")?;
        avg.resize(l.len(), 0.0);
        for (a, v) in avg.iter_mut().zip(l) {
            *a += *v as f64 / inputs.len() as f64;
        }
    }
    Ok(avg)
}

fn log_softmax_at(logits: &[f64], i: usize) -> f64 {
    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + logits.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    logits.get(i).copied().unwrap_or(f64::NEG_INFINITY) - lse
}

/// The byte-level vocabulary: 256 tokens, no merges.
pub fn byte_vocab() -> VocabData {
    VocabData {
        kind: TokenizerKind::ByteLevelBpe,
        flags: 0,
        pre_tokenizer: PreTokenizer::Gpt2,
        tokens: byte_tokens(),
        merges: Vec::new(),
        unk_id: NO_TOKEN,
        chat_template: String::new(),
    }
}

/// An encoder classifier of the trainer's family with the config's shape:
/// BERT's blocks, pre-norm, no embedding norm, `norm_eps` 1e-5.
fn text_config(cfg: &TrainConfig, vocab: u32, classes: u32) -> Config {
    let m = &cfg.model;
    let shape = Shape::mha(m.d_model, m.n_layers, m.n_heads, m.d_ff)
        .vocab(vocab)
        .max_seq(m.max_seq);
    let shape = match m.n_kv_heads {
        0 => shape,
        kv => shape.kv_heads(kv),
    };
    Config {
        pre_norm: true,
        norm_eps: 1e-5,
        embedding_norm: false,
        n_classes: classes,
        ..family::bert(shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-level vocabulary's tokenizer (what the CLI and a device use)
    /// gives exactly the byte values the language model was trained on.
    #[test]
    fn byte_vocabulary_tokenizes_to_raw_bytes() -> Result<()> {
        let mut cfg = text_config(&TrainConfig::from_toml("task = \"austen\"")?, 256, 0);
        cfg.arch = Architecture::Decoder;
        cfg.causal = true;
        cfg.tied_embeddings = true;
        let tok = tokenizer_of(&byte_vocab(), &cfg)?;
        for text in ["It is a truth", "  Mr. Darcy's £5,\n\n\"Oh!\" — 1811\tend"] {
            let want: Vec<u32> = text.bytes().map(u32::from).collect();
            assert_eq!(tok.encode(text)?, want, "{text:?}");
            assert_eq!(tok.decode(&want)?, text);
        }
        Ok(())
    }

    #[test]
    fn digit_patches_are_2x2_blocks_in_row_major_order() {
        let mut px = [0u8; 64];
        for (i, p) in px.iter_mut().enumerate() {
            *p = (i % 17) as u8;
        }
        let f = digit_patches(&px, 0, 0);
        assert_eq!(f.len(), 64);
        // Patch 1 is columns 2–3 of rows 0–1; patch 4 starts row 2.
        let at = |y: usize, x: usize| px[y * 8 + x] as f32 / 16.0;
        assert_eq!(&f[4..8], &[at(0, 2), at(0, 3), at(1, 2), at(1, 3)]);
        assert_eq!(&f[16..20], &[at(2, 0), at(2, 1), at(3, 0), at(3, 1)]);
        // A shift right by one brings in zeros at column 0.
        let s = digit_patches(&px, 1, 0);
        assert_eq!((s[0], s[1]), (0.0, at(0, 0)));
    }
}
