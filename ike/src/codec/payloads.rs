//! Payload bodies (RFC 7296 §3.3–3.15): everything after the generic payload header.

use std::net::IpAddr;

use super::reader::Reader;
use super::sa::{decode_proposals, encode_proposals, Proposal};
use super::ts::{decode_selectors, encode_selectors, TrafficSelector};
use super::{payload_type as pt, DecodeError, DecodeErrorKind};

/// One payload of a message, with its body decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Security Association: proposals in preference order.
    Sa(Vec<Proposal>),
    /// Key Exchange.
    Ke(Ke),
    /// Identification of the initiator.
    IdI(Id),
    /// Identification of the responder.
    IdR(Id),
    /// A certificate.
    Cert(Cert),
    /// Certificate request: hashes of trusted CAs' public keys.
    CertReq(CertReq),
    /// Authentication data.
    Auth(Auth),
    /// Nonce (Ni or Nr).
    Nonce(Vec<u8>),
    /// Notify (error or status).
    Notify(Notify),
    /// Delete.
    Delete(Delete),
    /// Traffic selectors of the initiator.
    TsI(Vec<TrafficSelector>),
    /// Traffic selectors of the responder.
    TsR(Vec<TrafficSelector>),
    /// Encrypted and authenticated: `first_inner` is the type of the first inner payload,
    /// `body` is IV || ciphertext || ICV.
    Sk {
        /// Payload type of the first payload inside.
        first_inner: u8,
        /// IV, encrypted payloads and padding, integrity checksum.
        body: Vec<u8>,
    },
    /// Encrypted and authenticated fragment (RFC 7383 §2.5): one piece of an SK message.
    Skf {
        /// Payload type of the first inner payload (fragment 1), 0 in the others.
        first_inner: u8,
        /// Fragment Number, from 1.
        number: u16,
        /// Total Fragments of the message.
        total: u16,
        /// IV, encrypted piece and padding, integrity checksum.
        body: Vec<u8>,
    },
    /// A payload type we do not know that had the critical bit set.
    Unknown {
        /// Its payload type number.
        payload_type: u8,
        /// Its body, verbatim.
        body: Vec<u8>,
    },
}

/// KE payload body (§3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ke {
    /// Diffie-Hellman group number.
    pub group: u16,
    /// Public value.
    pub data: Vec<u8>,
}

/// ID types (§3.5).
pub struct IdType;
impl IdType {
    pub const IPV4_ADDR: u8 = 1;
    pub const FQDN: u8 = 2;
    pub const RFC822_ADDR: u8 = 3;
    pub const IPV6_ADDR: u8 = 5;
    pub const DER_ASN1_DN: u8 = 9;
    pub const KEY_ID: u8 = 11;
}

/// IDi/IDr payload body (§3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id {
    /// See [`IdType`].
    pub id_type: u8,
    /// The identity, encoded per its type.
    pub data: Vec<u8>,
}

impl Id {
    /// The body octets ID' that AUTH covers (§2.15): type, three reserved bytes, data.
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.id_type, 0, 0, 0];
        out.extend_from_slice(&self.data);
        out
    }

    /// An IPV4_ADDR or IPV6_ADDR identity for `addr`.
    pub fn from_ip(addr: IpAddr) -> Id {
        match addr {
            IpAddr::V4(a) => Id {
                id_type: IdType::IPV4_ADDR,
                data: a.octets().to_vec(),
            },
            IpAddr::V6(a) => Id {
                id_type: IdType::IPV6_ADDR,
                data: a.octets().to_vec(),
            },
        }
    }
}

/// CERT payload body (§3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    /// Certificate encoding; 4 = X.509 Certificate - Signature (DER).
    pub encoding: u8,
    /// The certificate.
    pub data: Vec<u8>,
}

impl Cert {
    /// Encoding number for a DER X.509 certificate.
    pub const X509_SIGNATURE: u8 = 4;
}

/// CERTREQ payload body (§3.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertReq {
    /// Certificate encoding requested.
    pub encoding: u8,
    /// Concatenated SHA-1 hashes of the acceptable CAs' SubjectPublicKeyInfo.
    pub authorities: Vec<u8>,
}

/// AUTH payload body (§3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Authentication method (1 RSA, 2 PSK, 9 ECDSA P-256, 14 RFC 7427).
    pub method: u8,
    /// Signature or MAC.
    pub data: Vec<u8>,
}

/// Notify payload body (§3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Protocol the SPI belongs to, 0 if none.
    pub protocol: u8,
    /// SPI (empty for most notifies).
    pub spi: Vec<u8>,
    /// Notify message type.
    pub notify_type: u16,
    /// Notification data.
    pub data: Vec<u8>,
}

impl Notify {
    /// A notify without SPI.
    pub fn new(notify_type: u16, data: Vec<u8>) -> Notify {
        Notify {
            protocol: 0,
            spi: Vec::new(),
            notify_type,
            data,
        }
    }
}

/// Delete payload body (§3.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// Protocol of the SAs deleted.
    pub protocol: u8,
    /// Size of each SPI (0 for IKE, 4 for ESP).
    pub spi_size: u8,
    /// The SPIs, `spi_size` bytes each.
    pub spis: Vec<Vec<u8>>,
}

impl Payload {
    /// The payload type number of this payload.
    pub fn type_number(&self) -> u8 {
        match self {
            Payload::Sa(_) => pt::SA,
            Payload::Ke(_) => pt::KE,
            Payload::IdI(_) => pt::IDI,
            Payload::IdR(_) => pt::IDR,
            Payload::Cert(_) => pt::CERT,
            Payload::CertReq(_) => pt::CERTREQ,
            Payload::Auth(_) => pt::AUTH,
            Payload::Nonce(_) => pt::NONCE,
            Payload::Notify(_) => pt::NOTIFY,
            Payload::Delete(_) => pt::DELETE,
            Payload::TsI(_) => pt::TSI,
            Payload::TsR(_) => pt::TSR,
            Payload::Sk { .. } => pt::SK,
            Payload::Skf { .. } => pt::SKF,
            Payload::Unknown { payload_type, .. } => *payload_type,
        }
    }

    /// Decodes the body of a payload of type `ptype`; `Ok(None)` for a type we skip.
    pub(crate) fn decode_body(
        ptype: u8,
        next: u8,
        critical: bool,
        r: &mut Reader<'_>,
    ) -> Result<Option<Payload>, DecodeError> {
        let payload = match ptype {
            pt::SA => Payload::Sa(decode_proposals(r)?),
            pt::KE => {
                let group = r.u16("KE group")?;
                r.take(2, "KE reserved")?;
                Payload::Ke(Ke {
                    group,
                    data: r.rest().to_vec(),
                })
            }
            pt::IDI => Payload::IdI(decode_id(r)?),
            pt::IDR => Payload::IdR(decode_id(r)?),
            pt::CERT => Payload::Cert(Cert {
                encoding: r.u8("CERT encoding")?,
                data: r.rest().to_vec(),
            }),
            pt::CERTREQ => Payload::CertReq(CertReq {
                encoding: r.u8("CERTREQ encoding")?,
                authorities: r.rest().to_vec(),
            }),
            pt::AUTH => {
                let method = r.u8("AUTH method")?;
                r.take(3, "AUTH reserved")?;
                Payload::Auth(Auth {
                    method,
                    data: r.rest().to_vec(),
                })
            }
            pt::NONCE => decode_nonce(r)?,
            pt::NOTIFY => Payload::Notify(decode_notify(r)?),
            pt::DELETE => Payload::Delete(decode_delete(r)?),
            pt::TSI => Payload::TsI(decode_selectors(r)?),
            pt::TSR => Payload::TsR(decode_selectors(r)?),
            pt::SK => Payload::Sk {
                first_inner: next,
                body: r.rest().to_vec(),
            },
            pt::SKF => Payload::Skf {
                first_inner: next,
                number: r.u16("fragment number")?,
                total: r.u16("total fragments")?,
                body: r.rest().to_vec(),
            },
            pt::VENDOR_ID => return Ok(None),
            _ if critical => Payload::Unknown {
                payload_type: ptype,
                body: r.rest().to_vec(),
            },
            _ => return Ok(None),
        };
        Ok(Some(payload))
    }

    /// Appends the body of this payload (without the generic header).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Sa(proposals) => encode_proposals(proposals, out),
            Payload::Ke(ke) => {
                out.extend_from_slice(&ke.group.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&ke.data);
            }
            Payload::IdI(id) | Payload::IdR(id) => out.extend_from_slice(&id.body_bytes()),
            Payload::Cert(c) => {
                out.push(c.encoding);
                out.extend_from_slice(&c.data);
            }
            Payload::CertReq(c) => {
                out.push(c.encoding);
                out.extend_from_slice(&c.authorities);
            }
            Payload::Auth(a) => {
                out.extend_from_slice(&[a.method, 0, 0, 0]);
                out.extend_from_slice(&a.data);
            }
            Payload::Nonce(n) => out.extend_from_slice(n),
            Payload::Notify(n) => {
                out.push(n.protocol);
                out.push(u8::try_from(n.spi.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(&n.notify_type.to_be_bytes());
                out.extend_from_slice(&n.spi);
                out.extend_from_slice(&n.data);
            }
            Payload::Delete(d) => {
                out.push(d.protocol);
                out.push(d.spi_size);
                let count = u16::try_from(d.spis.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&count.to_be_bytes());
                d.spis.iter().for_each(|s| out.extend_from_slice(s));
            }
            Payload::TsI(ts) | Payload::TsR(ts) => encode_selectors(ts, out),
            Payload::Skf {
                number,
                total,
                body,
                ..
            } => {
                out.extend_from_slice(&number.to_be_bytes());
                out.extend_from_slice(&total.to_be_bytes());
                out.extend_from_slice(body);
            }
            Payload::Sk { body, .. } | Payload::Unknown { body, .. } => out.extend_from_slice(body),
        }
    }
}

fn decode_id(r: &mut Reader<'_>) -> Result<Id, DecodeError> {
    let id_type = r.u8("ID type")?;
    r.take(3, "ID reserved")?;
    Ok(Id {
        id_type,
        data: r.rest().to_vec(),
    })
}

fn decode_nonce(r: &mut Reader<'_>) -> Result<Payload, DecodeError> {
    // §3.9: nonces are 16..=256 octets.
    if !(16..=256).contains(&r.remaining()) {
        return Err(r.error(DecodeErrorKind::BadLength("nonce")));
    }
    Ok(Payload::Nonce(r.rest().to_vec()))
}

fn decode_notify(r: &mut Reader<'_>) -> Result<Notify, DecodeError> {
    let protocol = r.u8("notify protocol")?;
    let spi_size = r.u8("notify SPI size")?;
    let notify_type = r.u16("notify type")?;
    let spi = r.take(usize::from(spi_size), "notify SPI")?.to_vec();
    Ok(Notify {
        protocol,
        spi,
        notify_type,
        data: r.rest().to_vec(),
    })
}

fn decode_delete(r: &mut Reader<'_>) -> Result<Delete, DecodeError> {
    let protocol = r.u8("delete protocol")?;
    let spi_size = r.u8("delete SPI size")?;
    let count = r.u16("delete SPI count")?;
    let spis = (0..count)
        .map(|_| {
            r.take(usize::from(spi_size), "delete SPI")
                .map(<[u8]>::to_vec)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if r.remaining() != 0 {
        return Err(r.error(DecodeErrorKind::BadLength("delete payload")));
    }
    Ok(Delete {
        protocol,
        spi_size,
        spis,
    })
}
