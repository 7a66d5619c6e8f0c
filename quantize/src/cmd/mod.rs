//! One module per subcommand: its flags (`Args`, a `clap::Args`) and its
//! `run`.

pub mod classify;
pub mod embed;
pub mod eval;
pub mod export;
pub mod fetch;
pub mod generate;
pub mod import;
pub mod inspect;
pub mod quantize;
pub mod run;
pub mod train;
