//! One file per architecture, each compiled only where its instructions
//! exist (as tract-linalg's `x86_64_fma/`, `arm64/`): the SIMD kernels. They
//! are reached through the safe dispatchers in [`super`], never directly.

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
pub(crate) mod arm_dsp;
#[cfg(all(
    target_arch = "arm",
    target_feature = "mclass",
    target_feature = "neon"
))]
pub(crate) mod helium;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;
