//! `mote train` with a model no reader would accept (issue 16): refused
//! before the first step with the field named, and no output left behind.
#![cfg(feature = "train")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mote_host::train::{self, TrainConfig};

fn config(model: &str) -> anyhow::Result<TrainConfig> {
    TrainConfig::from_toml(&format!(
        "task = \"digits\"\n[model]\n{model}\n[train]\nsteps = 2\nbatch = 2\n"
    ))
}

fn error_of(r: anyhow::Result<TrainConfig>) -> String {
    match r {
        Ok(_) => panic!("accepted; expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn a_bad_model_shape_is_refused_with_its_field() {
    for (model, want) in [
        ("d_model = 0", "model.d_model = 0 is out of range"),
        ("n_layers = 0", "model.n_layers = 0 is out of range"),
        ("d_ff = 0", "model.d_ff = 0 is out of range"),
        ("n_heads = 0", "model.n_heads = 0 is out of range"),
        ("max_seq = 0", "model.max_seq = 0 is out of range"),
        (
            "d_model = 2000000",
            "model.d_model = 2000000 is out of range",
        ),
        (
            "d_model = 30\nn_heads = 4",
            "model.n_heads = 4 does not divide model.d_model = 30",
        ),
        (
            "n_heads = 4\nn_kv_heads = 3",
            "model.n_kv_heads = 3 does not divide model.n_heads = 4",
        ),
    ] {
        let err = error_of(config(model));
        assert!(err.contains(want), "{model}: {err}");
    }
    assert!(config("d_model = 32\nn_heads = 4").is_ok());
}

/// A config built in code (not parsed) is checked by `run` before anything
/// is written: the output directory is not even created.
#[test]
fn run_refuses_a_bad_config_before_writing_anything() {
    let mut cfg = config("").unwrap();
    cfg.model.d_model = 0;
    let out = std::env::temp_dir().join(format!("mote-train-door-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let err = train::run(&cfg, &out, false, &mut |_| true)
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(err.contains("model.d_model = 0"), "{err}");
    assert!(!out.exists(), "{} was created", out.display());
}

/// The network itself takes only a config the reader accepts, so a shape
/// that slipped past the training config still fails before any step.
#[test]
fn a_net_takes_only_a_valid_config() {
    let shape = mote_host::family::Shape::mha(16, 1, 2, 32)
        .vocab(50)
        .max_seq(8);
    let good = mote_core::Config {
        pre_norm: true,
        embedding_norm: false,
        n_classes: 3,
        ..mote_host::family::bert(shape)
    };
    assert!(train::net::Net::new(good, 1).is_ok());
    let bad = mote_core::Config { d_ff: 0, ..good };
    let err = train::net::Net::new(bad, 1)
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        err.contains("the model to train is invalid: config field `d_ff` has bad value 0"),
        "{err}"
    );
}
