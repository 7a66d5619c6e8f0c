//! Calibration hooks: the points where the f32 path shows its activations
//! to an [`Observe`]r, and whose static scales an integer-only model stores.

/// A point where the f32 path shows its activations to an [`Observe`]r
/// during calibration, and whose static scale an integer model stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// The residual stream (global; `i32`, so calibration leaves headroom).
    Residual,
    /// Input of the LM head or the classifier (global; int8).
    HeadIn,
    /// Encoder feature rows (global; int8).
    Features,
    /// Input of `wq`, `wk`, `wv` (int8).
    AttnIn,
    /// Query after RoPE (int8).
    Query,
    /// Key after RoPE, as cached (int8).
    Key,
    /// Value, as cached (int8).
    Value,
    /// Attention output, input of `wo` (int8).
    Context,
    /// Input of `w1` (and `w3`) (int8).
    FfnIn,
    /// Input of `w2`, after the activation (int8).
    Mid,
}

impl Point {
    /// Every point.
    pub const ALL: [Point; 10] = [
        Point::Residual,
        Point::HeadIn,
        Point::Features,
        Point::AttnIn,
        Point::Query,
        Point::Key,
        Point::Value,
        Point::Context,
        Point::FfnIn,
        Point::Mid,
    ];

    /// Whether the point has one scale per layer, and its index in `act`
    /// (global) or `L<i>.act` (per layer).
    pub fn slot(self) -> (bool, usize) {
        match self {
            Point::Residual => (false, 0),
            Point::HeadIn => (false, 1),
            Point::Features => (false, 2),
            Point::AttnIn => (true, 0),
            Point::Query => (true, 1),
            Point::Key => (true, 2),
            Point::Value => (true, 3),
            Point::Context => (true, 4),
            Point::FfnIn => (true, 5),
            Point::Mid => (true, 6),
        }
    }
}

/// Receives the f32 path's activations (see [`crate::Session::set_observer`]).
pub trait Observe {
    /// `x` holds one row's values at `point` of `layer` (0 for global points).
    fn see(&mut self, layer: u32, point: Point, x: &[f32]);
}

/// Where the f32 path shows its activations during calibration.
pub(super) struct Watch<'a> {
    pub(super) obs: Option<&'a mut (dyn Observe + Send)>,
    pub(super) layer: u32,
}

impl Watch<'_> {
    pub(super) fn see(&mut self, point: Point, x: &[f32]) {
        if let Some(o) = self.obs.as_deref_mut() {
            o.see(self.layer, point, x);
        }
    }
}
