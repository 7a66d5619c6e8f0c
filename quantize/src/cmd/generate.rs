//! `mote generate`: text from a decoder, greedy or sampled, the prompt
//! through the model's chat template (bounded: `template.rs`).

use crate::args;
use crate::open::{core_err, Arena, Loaded};
use anyhow::{bail, Context, Result};
use mote_core::{Architecture, RunConfig};
use mote_host::tokenizer::Tokenizer;
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The .mote model.
    model: PathBuf,
    /// Prompt text; the model's chat template is applied when it has one.
    #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
    prompt: Option<String>,
    /// Prompt token ids, fed exactly as given (no template, no BOS).
    #[arg(long, value_delimiter = ',')]
    ids: Option<Vec<u32>>,
    /// Maximum new tokens (at least 1).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_tokens: u32,
    /// When the context is full, keep its last half and go on (the model
    /// re-reads it); without this, prompt + --max-tokens must fit the model.
    #[arg(long)]
    slide: bool,
    /// Always take the most likely token (the default when no --temperature is given).
    #[arg(long)]
    greedy: bool,
    /// Sample from softmax(logits / T) instead of greedy decoding; T is a
    /// finite number above 0.
    #[arg(long, conflicts_with = "greedy", allow_hyphen_values = true, value_parser = args::temperature)]
    temperature: Option<f32>,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads for the matrix products: 1, or 2 (the default when the
    /// machine has two cores or more; each product splits in two halves,
    /// so more counts as 2). The output is bit-identical either way.
    #[arg(long, value_parser = args::at_least_one)]
    threads: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<()> {
    let loaded = Loaded::open(&a.model)?;
    let m = loaded.model_of(Architecture::Decoder, "generate")?;
    let c = *m.config();
    let tok = if m.vocab().is_empty() {
        None
    } else {
        Some(Tokenizer::from_model(m.vocab(), &c)?)
    };
    let mut prompt = match (a.prompt, a.ids) {
        (Some(p), _) => {
            if p.trim().is_empty() {
                bail!("--prompt is empty");
            }
            let t = tok
                .as_ref()
                .context("this model has no vocabulary: use --ids")?;
            t.encode(&crate::template::apply(&m, &p)?)?
        }
        (None, Some(ids)) => ids,
        (None, None) => bail!("give --prompt or --ids"),
    };
    if prompt.is_empty() {
        bail!("the prompt has no tokens");
    }
    let max_tokens = a.max_tokens;
    let mut total = prompt.len() as u64 + max_tokens as u64;
    if a.slide {
        total = total.min(c.max_seq as u64);
        let keep = (c.max_seq as usize / 2).max(1);
        if prompt.len() > keep {
            prompt.drain(..prompt.len() - keep);
        }
    }
    if total > c.max_seq as u64 {
        bail!(
            "prompt ({} tokens) + --max-tokens {max_tokens} exceed the model's maximum sequence of {}",
            prompt.len(),
            c.max_seq
        );
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let join = if threads > 1 {
        Some(mote_host::parallel::SpinJoin::new()?)
    } else {
        None
    };
    let mut arena = Arena::new(
        &m,
        RunConfig {
            max_seq: total.max(1) as u32,
        },
    )?;
    let max_seq = arena.run().max_seq as usize;
    let mut s = arena.session(&m)?;
    if let Some(j) = &join {
        s.set_join(j);
    }
    let mut rng = a.seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::new();
    let mut logits = s.prefill(&prompt).map_err(core_err)?;
    for step in 0..max_tokens {
        let next = match a.temperature {
            Some(t) => sample(logits, t, &mut rng),
            None => mote_core::kernels::argmax(logits) as u32,
        };
        if next == c.eos {
            break;
        }
        out.push(next);
        if step + 1 == max_tokens {
            break;
        }
        if a.slide && s.position() == max_seq {
            // Full: start again from the last half of the context.
            let mut ctx: Vec<u32> = prompt.iter().chain(&out).copied().collect();
            ctx.drain(..ctx.len() - (max_seq / 2).max(1));
            s.reset();
            s.prefill(&ctx[..ctx.len() - 1]).map_err(core_err)?;
        }
        logits = s.decode_step(next).map_err(core_err)?;
    }
    let text = match &tok {
        Some(t) => t.decode(&out)?,
        None => String::new(),
    };
    if a.json {
        println!("{}", json!({"ids": out, "text": text}));
    } else {
        println!("{text}");
    }
    Ok(())
}

/// Samples from softmax(logits / t) with a xorshift generator (`t` finite
/// and above 0: `args::temperature` checked it).
fn sample(logits: &[f32], t: f32, state: &mut u64) -> u32 {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = logits.iter().map(|&l| (((l - max) / t) as f64).exp()).sum();
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let mut r = (*state >> 11) as f64 / (1u64 << 53) as f64 * total;
    for (i, &l) in logits.iter().enumerate() {
        r -= (((l - max) / t) as f64).exp();
        if r <= 0.0 {
            return i as u32;
        }
    }
    logits.len().saturating_sub(1) as u32
}
