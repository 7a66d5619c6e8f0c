//! Experiment: the France prompt's first-token logits ("The" vs "L") under
//! each weight variant. `france_margin MODEL.mote`
#![allow(clippy::unwrap_used)]
use mote_core::{Model, RunConfig, Session};
use mote_host::quantize::{quantize, Target};
use mote_host::tokenizer::Tokenizer;
use mote_host::ModelFile;

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let f = ModelFile::read(std::path::Path::new(&path)).unwrap();
    let m = Model::from_bytes(f.bytes()).unwrap();
    let tok = Tokenizer::from_model(m.vocab(), m.config()).unwrap();
    let ids = tok
        .encode(
            &tok.apply_chat_template("What is the capital of France?")
                .unwrap(),
        )
        .unwrap();
    let the = tok.encode("The").unwrap()[0] as usize;
    let l = tok.encode("L").unwrap()[0] as usize;
    let show = |name: &str, m: &Model| {
        let run = RunConfig {
            max_seq: ids.len() as u32,
        };
        let mut arena = vec![0u8; m.arena_bytes(&run).unwrap() + 15];
        let mut s = Session::new(m, &mut arena, run).unwrap();
        let lg = s.prefill(&ids).unwrap();
        println!(
            "{name:>10}: The {:.4}  L {:.4}  margin {:.4}",
            lg[the],
            lg[l],
            lg[the] - lg[l]
        );
    };
    show("f32", &m);
    for (name, t) in [
        ("int8", Target::Int8),
        ("int8-row", Target::Int8Row),
        ("f16", Target::F16),
    ] {
        let q = ModelFile::from_vec(quantize(&m, t, |_, _| {}).unwrap().0.to_bytes());
        show(name, &Model::from_bytes(q.bytes()).unwrap());
    }
}
