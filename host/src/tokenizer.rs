//! Host-side tokenization built from the vocabulary stored in a `.mote`
//! file (not from the original checkpoint), using the `tokenizers` crate.

use anyhow::{anyhow, bail, Context, Result};
use mote_core::vocab::{kind, PreTokenizer, TokenizerKind, FLAG_LOWERCASE, FLAG_STRIP_ACCENTS};
use mote_core::{config::NO_TOKEN, Config, Vocab};
use serde_json::{json, Map, Value};

/// A tokenizer for one model, with its chat template.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    template: String,
    bos: Option<String>,
    eos: Option<String>,
}

fn token_text(v: &Vocab, id: u32) -> Result<String> {
    let t = v
        .token(id)
        .with_context(|| format!("vocabulary has no token {id}"))?;
    String::from_utf8(t.to_vec()).with_context(|| format!("token {id} is not UTF-8"))
}

impl Tokenizer {
    /// Builds the tokenizer described by a model's vocabulary section.
    pub fn from_model(vocab: &Vocab, config: &Config) -> Result<Self> {
        if vocab.kind == TokenizerKind::None {
            bail!("this model has no vocabulary: pass token ids instead of text");
        }
        let mut map = Map::new();
        let mut added = Vec::new();
        let mut texts = Vec::with_capacity(vocab.len() as usize);
        for id in 0..vocab.len() {
            let t = token_text(vocab, id)?;
            if vocab.token_kind(id) == Some(kind::SPECIAL) {
                added.push(
                    json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true}),
                );
            }
            map.insert(t.clone(), json!(id));
            texts.push(t);
        }
        let name = |id: u32| {
            (id != NO_TOKEN)
                .then(|| texts.get(id as usize).cloned())
                .flatten()
        };
        let (bos, eos) = (name(config.bos), name(config.eos));
        let spec = match vocab.kind {
            TokenizerKind::WordPiece => {
                let unk = name(vocab.unk_id).unwrap_or_else(|| "[UNK]".into());
                let special = |t: &Option<String>, id: u32| t.as_ref().map(|t| (t.clone(), id));
                let (cls, sep) = (special(&bos, config.bos), special(&eos, config.eos));
                let post = match (&cls, &sep) {
                    (Some((c, ci)), Some((s, si))) => json!({"type": "TemplateProcessing",
                        "single": [{"SpecialToken": {"id": c, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": s, "type_id": 0}}],
                        "pair": [{"SpecialToken": {"id": c, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": s, "type_id": 0}},
                                 {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": s, "type_id": 1}}],
                        "special_tokens": {c.clone(): {"id": c, "ids": [ci], "tokens": [c]}, s.clone(): {"id": s, "ids": [si], "tokens": [s]}}}),
                    _ => Value::Null,
                };
                json!({"version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
                    "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                        "strip_accents": vocab.flags & FLAG_STRIP_ACCENTS != 0, "lowercase": vocab.flags & FLAG_LOWERCASE != 0},
                    "pre_tokenizer": {"type": "BertPreTokenizer"},
                    "post_processor": post,
                    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
                    "model": {"type": "WordPiece", "unk_token": unk, "continuing_subword_prefix": "##",
                        "max_input_chars_per_word": 100, "vocab": map}})
            }
            TokenizerKind::ByteLevelBpe => {
                let mut merges = Vec::with_capacity(vocab.merge_count() as usize);
                for r in 0..vocab.merge_count() {
                    let (a, b) = vocab.merge(r).context("merge out of range")?;
                    merges.push(json!([texts[a as usize], texts[b as usize]]));
                }
                let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
                let pre = match vocab.pre_tokenizer {
                    PreTokenizer::Gpt2Digits => json!({"type": "Sequence", "pretokenizers": [
                        {"type": "Digits", "individual_digits": true}, byte_level]}),
                    _ => byte_level.clone(),
                };
                json!({"version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
                    "normalizer": null, "pre_tokenizer": pre, "post_processor": null, "decoder": byte_level,
                    "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                        "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                        "vocab": map, "merges": merges}})
            }
            TokenizerKind::None => unreachable!("checked above"),
        };
        let inner: tokenizers::Tokenizer = spec
            .to_string()
            .parse()
            .map_err(|e| anyhow!("building tokenizer: {e}"))?;
        Ok(Tokenizer {
            inner,
            template: vocab.chat_template().to_string(),
            bos,
            eos,
        })
    }

    /// Token ids of `text`, with the model's special tokens around it where it has them (BERT's `[CLS] … [SEP]`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| anyhow!("decoding: {e}"))
    }

    /// True when the model carries a chat template.
    pub fn has_chat_template(&self) -> bool {
        !self.template.is_empty()
    }

    /// Renders one user message through the model's chat template, with the
    /// assistant's turn opened; the text as is when there is no template.
    pub fn apply_chat_template(&self, user: &str) -> Result<String> {
        if self.template.is_empty() {
            return Ok(user.to_string());
        }
        let mut env = minijinja::Environment::new();
        env.add_template("chat", &self.template)
            .context("the model's chat template does not parse")?;
        let ctx = minijinja::context! {
            messages => vec![minijinja::context! { role => "user", content => user }],
            add_generation_prompt => true,
            bos_token => self.bos.clone().unwrap_or_default(),
            eos_token => self.eos.clone().unwrap_or_default(),
        };
        env.get_template("chat")?
            .render(ctx)
            .context("rendering the chat template")
    }
}
