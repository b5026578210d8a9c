//! IKEv2 (RFC 7296) as a pure, sans-I/O library.
pub mod auth;
pub mod cert;
pub mod codec;
pub mod crypto;
pub mod rng;
pub mod sa;

pub use codec::decode_message;
pub use rng::{Rng, SeededRng};
