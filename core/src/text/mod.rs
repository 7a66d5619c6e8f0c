//! Text on the device: the tokenizer vocabulary read in place from the
//! `.mote` vocabulary section. The tokenizers, the sampler and the
//! generation loop of the text issue come here.

pub mod vocab;
