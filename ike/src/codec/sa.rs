//! SA payload body (RFC 7296 §3.3): proposals, transforms, attributes.

use super::reader::{Reader, Writer};
use super::{DecodeError, DecodeErrorKind};

/// One proposal: a protocol, an SPI, and transforms (one per type is chosen from them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal number, 1 for the first.
    pub number: u8,
    /// Protocol ID (1 IKE, 3 ESP).
    pub protocol: u8,
    /// SPI: empty in an initial IKE proposal, 8 bytes for IKE rekeys, 4 for ESP.
    pub spi: Vec<u8>,
    /// Transforms in preference order.
    pub transforms: Vec<Transform>,
}

/// One transform (§3.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// Transform type (1 ENCR, 2 PRF, 3 INTEG, 4 DH, 5 ESN).
    pub transform_type: u8,
    /// Transform ID within the type.
    pub id: u16,
    /// Attributes (only Key Length is defined for IKEv2).
    pub attributes: Vec<Attribute>,
}

impl Transform {
    /// A transform without attributes.
    pub fn new(transform_type: u8, id: u16) -> Transform {
        Transform {
            transform_type,
            id,
            attributes: Vec::new(),
        }
    }

    /// A transform with a Key Length attribute in bits.
    pub fn with_key_length(transform_type: u8, id: u16, bits: u16) -> Transform {
        Transform {
            transform_type,
            id,
            attributes: vec![Attribute::Short {
                attr_type: Attribute::KEY_LENGTH,
                value: bits,
            }],
        }
    }

    /// The Key Length attribute, if present.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Short { attr_type, value } if *attr_type == Attribute::KEY_LENGTH => {
                Some(*value)
            }
            _ => None,
        })
    }
}

/// A transform attribute (§3.3.5): TV (short) or TLV (long) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// Type/value, AF bit set.
    Short {
        /// Attribute type (15 bits).
        attr_type: u16,
        /// Value.
        value: u16,
    },
    /// Type/length/value, AF bit clear.
    Long {
        /// Attribute type (15 bits).
        attr_type: u16,
        /// Value.
        value: Vec<u8>,
    },
}

impl Attribute {
    /// The Key Length attribute type.
    pub const KEY_LENGTH: u16 = 14;
}

const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;
const AF: u16 = 0x8000;

pub(crate) fn decode_proposals(r: &mut Reader<'_>) -> Result<Vec<Proposal>, DecodeError> {
    let mut proposals = Vec::new();
    loop {
        let more = r.u8("proposal last-substruc")?;
        r.take(1, "proposal reserved")?;
        let len = usize::from(r.u16("proposal length")?);
        let body_len = len
            .checked_sub(4)
            .ok_or_else(|| r.error(DecodeErrorKind::BadLength("proposal")))?;
        let mut body = r.sub(body_len, "proposal")?;
        proposals.push(decode_proposal(&mut body)?);
        match more {
            LAST => break,
            MORE_PROPOSALS => continue,
            _ => return Err(r.error(DecodeErrorKind::Invalid("proposal last-substruc"))),
        }
    }
    if r.remaining() != 0 {
        return Err(r.error(DecodeErrorKind::BadLength("SA payload")));
    }
    Ok(proposals)
}

fn decode_proposal(r: &mut Reader<'_>) -> Result<Proposal, DecodeError> {
    let number = r.u8("proposal number")?;
    let protocol = r.u8("protocol ID")?;
    let spi_size = r.u8("SPI size")?;
    let count = r.u8("transform count")?;
    let spi = r.take(usize::from(spi_size), "proposal SPI")?.to_vec();
    let mut transforms = Vec::with_capacity(usize::from(count));
    for i in 0..count {
        let more = r.u8("transform last-substruc")?;
        let last = i.checked_add(1) == Some(count);
        if (more == LAST) != last || (more != LAST && more != MORE_TRANSFORMS) {
            return Err(r.error(DecodeErrorKind::Invalid("transform last-substruc")));
        }
        r.take(1, "transform reserved")?;
        let len = usize::from(r.u16("transform length")?);
        let body_len = len
            .checked_sub(4)
            .ok_or_else(|| r.error(DecodeErrorKind::BadLength("transform")))?;
        let mut body = r.sub(body_len, "transform")?;
        transforms.push(decode_transform(&mut body)?);
    }
    if r.remaining() != 0 {
        return Err(r.error(DecodeErrorKind::BadLength("proposal")));
    }
    Ok(Proposal {
        number,
        protocol,
        spi,
        transforms,
    })
}

fn decode_transform(r: &mut Reader<'_>) -> Result<Transform, DecodeError> {
    let transform_type = r.u8("transform type")?;
    r.take(1, "transform reserved")?;
    let id = r.u16("transform ID")?;
    let mut attributes = Vec::new();
    while r.remaining() > 0 {
        let raw = r.u16("attribute type")?;
        let attr_type = raw & !AF;
        if raw & AF != 0 {
            let value = r.u16("attribute value")?;
            attributes.push(Attribute::Short { attr_type, value });
        } else {
            let len = usize::from(r.u16("attribute length")?);
            let value = r.take(len, "attribute value")?.to_vec();
            attributes.push(Attribute::Long { attr_type, value });
        }
    }
    Ok(Transform {
        transform_type,
        id,
        attributes,
    })
}

pub(crate) fn encode_proposals(proposals: &[Proposal], out: &mut Vec<u8>) {
    for (i, p) in proposals.iter().enumerate() {
        let start = out.len();
        let more = if i + 1 == proposals.len() {
            LAST
        } else {
            MORE_PROPOSALS
        };
        out.extend_from_slice(&[more, 0]);
        let len_at = out.len_placeholder();
        out.push(p.number);
        out.push(p.protocol);
        out.push(u8::try_from(p.spi.len()).unwrap_or(u8::MAX));
        out.push(u8::try_from(p.transforms.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&p.spi);
        for (j, t) in p.transforms.iter().enumerate() {
            let more = if j + 1 == p.transforms.len() {
                LAST
            } else {
                MORE_TRANSFORMS
            };
            encode_transform(t, more, out);
        }
        out.patch_len(len_at, start);
    }
}

fn encode_transform(t: &Transform, more: u8, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[more, 0]);
    let len_at = out.len_placeholder();
    out.push(t.transform_type);
    out.push(0);
    out.extend_from_slice(&t.id.to_be_bytes());
    for a in &t.attributes {
        match a {
            Attribute::Short { attr_type, value } => {
                out.extend_from_slice(&(attr_type | AF).to_be_bytes());
                out.extend_from_slice(&value.to_be_bytes());
            }
            Attribute::Long { attr_type, value } => {
                out.extend_from_slice(&(attr_type & !AF).to_be_bytes());
                let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(value);
            }
        }
    }
    out.patch_len(len_at, start);
}
