//! What a task's score is: the one place `train`, `eval` and the plots
//! learn whether a task reports accuracy or perplexity.

use mote_host::train::TaskKind;

/// What a task's score is, and what its training rate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Classification accuracy; the rate counts samples.
    Accuracy,
    /// The language model's perplexity; the rate counts tokens.
    Perplexity,
}

impl Metric {
    /// The metric of a task.
    pub fn of(task: TaskKind) -> Metric {
        match task {
            TaskKind::Austen => Metric::Perplexity,
            TaskKind::Digits | TaskKind::BbcNews | TaskKind::Kws => Metric::Accuracy,
        }
    }

    /// Its name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Perplexity => "perplexity",
        }
    }

    /// The unit of the training rate.
    pub fn rate_unit(self) -> &'static str {
        match self {
            Metric::Accuracy => "samples/s",
            Metric::Perplexity => "tokens/s",
        }
    }
}
