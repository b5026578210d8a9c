//! IKEv2 (RFC 7296) as a pure, sans-I/O library: see `README.md` for the API, what is
//! implemented and what is not. Entry points: [`sa::Endpoint`] (the protocol),
//! [`decode_message`] (the decoder, for fuzzing), [`cert::CertVerifier`] (peer admission).
pub mod auth;
pub mod cert;
pub mod codec;
pub mod crypto;
pub mod rng;
pub mod sa;
#[cfg(any(test, feature = "testkit"))]
pub mod testnet;

pub use codec::decode_message;
pub use rng::{Rng, SeededRng};
