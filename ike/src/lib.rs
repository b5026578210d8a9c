//! IKEv2 (RFC 7296) as a pure, sans-I/O library.
pub mod codec;

pub use codec::decode_message;
