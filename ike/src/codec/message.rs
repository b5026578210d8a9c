//! The IKE header (§3.1), the generic payload header chain (§3.2), whole messages.

use super::reader::{Reader, Writer};
use super::{payload_type as pt, DecodeError, DecodeErrorKind, Payload};

/// Length of the fixed IKE header.
pub const HEADER_LEN: usize = 28;
const CRITICAL: u8 = 0x80;

/// The fixed IKE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Initiator's SPI.
    pub spi_i: u64,
    /// Responder's SPI (0 in the first IKE_SA_INIT request).
    pub spi_r: u64,
    /// Exchange type (see [`super::exchange`]).
    pub exchange: u8,
    /// Flags (see [`super::flags`]).
    pub flags: u8,
    /// Message ID.
    pub message_id: u32,
}

impl Header {
    /// Whether the R flag is set.
    pub fn is_response(&self) -> bool {
        self.flags & super::flags::RESPONSE != 0
    }

    /// Whether the I flag (sent by the original initiator) is set.
    pub fn from_initiator(&self) -> bool {
        self.flags & super::flags::INITIATOR != 0
    }

    /// The 28 header bytes with `next` and `length` filled in.
    pub fn to_bytes(&self, next: u8, length: u32) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&self.spi_i.to_be_bytes());
        out[8..16].copy_from_slice(&self.spi_r.to_be_bytes());
        out[16] = next;
        out[17] = 0x20; // major 2, minor 0
        out[18] = self.exchange;
        out[19] = self.flags;
        out[20..24].copy_from_slice(&self.message_id.to_be_bytes());
        out[24..28].copy_from_slice(&length.to_be_bytes());
        out
    }
}

/// A decoded message: header and its top-level payloads in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// Payloads in order (an SK or SKF payload, if any, is last and still encrypted).
    pub payloads: Vec<Payload>,
}

/// Decodes one IKEv2 message (the fuzzing entry point: must never panic).
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader::new(bytes, 0);
    let spi_i = r.u64("IKE SPIi")?;
    let spi_r = r.u64("IKE SPIr")?;
    let next = r.u8("next payload")?;
    let version = r.u8("version")?;
    if version >> 4 != 2 {
        return Err(r.error(DecodeErrorKind::UnsupportedVersion(version >> 4)));
    }
    let exchange = r.u8("exchange type")?;
    let flags = r.u8("flags")?;
    let message_id = r.u32("message ID")?;
    let length = r.u32("length")?;
    if usize::try_from(length).ok() != Some(bytes.len()) {
        return Err(r.error(DecodeErrorKind::BadLength("message")));
    }
    let header = Header {
        spi_i,
        spi_r,
        exchange,
        flags,
        message_id,
    };
    let payloads = decode_chain(next, &mut r)?;
    Ok(Message { header, payloads })
}

/// Decodes a payload chain that starts with type `first` (e.g. a decrypted SK body).
pub fn decode_payloads(first: u8, bytes: &[u8]) -> Result<Vec<Payload>, DecodeError> {
    decode_chain(first, &mut Reader::new(bytes, 0))
}

fn decode_chain(first: u8, r: &mut Reader<'_>) -> Result<Vec<Payload>, DecodeError> {
    let mut payloads = Vec::new();
    let mut ptype = first;
    while ptype != pt::NONE {
        let next = r.u8("next payload")?;
        let critical = r.u8("critical flag")? & CRITICAL != 0;
        let len = usize::from(r.u16("payload length")?);
        let body_len = len
            .checked_sub(4)
            .ok_or_else(|| r.error(DecodeErrorKind::BadLength("payload")))?;
        let mut body = r.sub(body_len, "payload body")?;
        if let Some(p) = Payload::decode_body(ptype, next, critical, &mut body)? {
            payloads.push(p);
        }
        if ptype == pt::SK || ptype == pt::SKF {
            break; // SK/SKF is last; its next-payload field names the first inner payload
        }
        ptype = next;
    }
    if r.remaining() != 0 {
        return Err(r.error(DecodeErrorKind::BadLength("payload chain")));
    }
    Ok(payloads)
}

/// Encodes a payload chain; returns the type of the first payload (0 if none) and bytes.
pub fn encode_payloads(payloads: &[Payload]) -> (u8, Vec<u8>) {
    let mut out = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let next = match p {
            Payload::Sk { first_inner, .. } | Payload::Skf { first_inner, .. } => *first_inner,
            _ => payloads.get(i + 1).map_or(pt::NONE, Payload::type_number),
        };
        let critical = if matches!(p, Payload::Unknown { .. }) {
            CRITICAL
        } else {
            0
        };
        let start = out.len();
        out.extend_from_slice(&[next, critical]);
        let len_at = out.len_placeholder();
        p.encode_body(&mut out);
        out.patch_len(len_at, start);
    }
    let first = payloads.first().map_or(pt::NONE, Payload::type_number);
    (first, out)
}

impl Message {
    /// Encodes the message, filling in the next-payload and length fields.
    pub fn encode(&self) -> Vec<u8> {
        let (first, body) = encode_payloads(&self.payloads);
        let total = HEADER_LEN.saturating_add(body.len());
        let length = u32::try_from(total).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&self.header.to_bytes(first, length));
        out.extend_from_slice(&body);
        out
    }

    /// The first unknown payload that had the critical bit set, if any.
    pub fn unsupported_critical(&self) -> Option<u8> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Unknown { payload_type, .. } => Some(*payload_type),
            _ => None,
        })
    }
}
