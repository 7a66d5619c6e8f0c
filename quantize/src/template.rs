//! A model's chat template (Jinja, from the model file: data from outside),
//! rendered with bounds. Loops nested inside each other used to run for
//! hours and grow memory without end; here the engine has a fuel budget
//! (instructions) and the output a size cap, and running past either is an
//! error that says which.

use anyhow::{bail, Context, Result};
use mote_core::config::NO_TOKEN;
use mote_core::Model;

/// Instructions one render may run. A real template (SmolLM2's, Llama's)
/// takes a few hundred for one message.
pub const FUEL: u64 = 200_000;
/// Bytes a render may write beyond the user's message itself.
pub const OUTPUT_CAP: usize = 1 << 20;
/// Macro and include nesting allowed.
const RECURSION: usize = 32;

/// Renders one user message through `m`'s chat template with the
/// assistant's turn opened; the message as is when there is no template.
pub fn apply(m: &Model, user: &str) -> Result<String> {
    let v = m.vocab();
    let template = v.chat_template();
    if template.is_empty() {
        return Ok(user.to_string());
    }
    let token = |id: u32| -> String {
        (id != NO_TOKEN)
            .then(|| v.token(id))
            .flatten()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .unwrap_or_default()
    };
    let mut env = minijinja::Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION);
    env.add_template("chat", template)
        .context("the model's chat template does not parse")?;
    let ctx = minijinja::context! {
        messages => vec![minijinja::context! { role => "user", content => user }],
        add_generation_prompt => true,
        bos_token => token(m.config().bos),
        eos_token => token(m.config().eos),
    };
    let cap = user.len().saturating_add(OUTPUT_CAP);
    let mut out = Capped {
        buf: Vec::new(),
        cap,
        over: false,
    };
    let result = env
        .get_template("chat")
        .and_then(|t| t.render_captured_to(ctx, &mut out).map(|_| ()));
    if out.over {
        bail!("the model's chat template writes more than {cap} bytes for one message");
    }
    if let Err(e) = result {
        if e.kind() == minijinja::ErrorKind::OutOfFuel {
            bail!("the model's chat template runs more than {FUEL} instructions for one message");
        }
        return Err(e).context("rendering the model's chat template");
    }
    String::from_utf8(out.buf).context("the chat template's output is not UTF-8")
}

/// A writer that fails past `cap` bytes (and says so in `over`).
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(b.len()) > self.cap {
            self.over = true;
            return Err(std::io::Error::other("output cap"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
