//! The extended key usages we accept, and the peer's IKE identity against its certificate.

use std::net::IpAddr;

use webpki::{ExtendedKeyUsageValidator, KeyPurposeIdIter, KeyUsage, RequiredEkuNotFoundContext};
use x509_parser::prelude::{GeneralName, X509Certificate};

use super::CertError;
use crate::codec::{Id, IdType};

const SERVER_AUTH: &[usize] = &[1, 3, 6, 1, 5, 5, 7, 3, 1];
const CLIENT_AUTH: &[usize] = &[1, 3, 6, 1, 5, 5, 7, 3, 2];
const IPSEC_IKE: &[usize] = &[1, 3, 6, 1, 5, 5, 7, 3, 17];

/// EKU absent, or containing serverAuth, clientAuth or ipsecIKE (RFC 4945 5.1.3.12).
pub(super) struct IkeEku;

impl ExtendedKeyUsageValidator for IkeEku {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        let mut present = Vec::new();
        for purpose in iter {
            let oid = purpose?.to_decoded_oid();
            if [SERVER_AUTH, CLIENT_AUTH, IPSEC_IKE].contains(&oid.as_slice()) {
                return Ok(());
            }
            present.push(oid);
        }
        if present.is_empty() {
            return Ok(());
        }
        Err(webpki::Error::RequiredEkuNotFoundContext(
            RequiredEkuNotFoundContext {
                required: KeyUsage::server_auth(),
                present,
            },
        ))
    }
}

/// Checks that `id` names the certificate: subject DN, or a matching subjectAltName.
pub(super) fn check(cert: &X509Certificate<'_>, id: &Id) -> Result<(), CertError> {
    let names: Vec<GeneralName<'_>> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san.value.general_names.clone(),
        _ => Vec::new(),
    };
    let matches = match id.id_type {
        IdType::DER_ASN1_DN => cert.subject().as_raw() == id.data.as_slice(),
        IdType::IPV4_ADDR | IdType::IPV6_ADDR => names
            .iter()
            .any(|n| matches!(n, GeneralName::IPAddress(ip) if *ip == id.data.as_slice())),
        IdType::FQDN => names.iter().any(|n| match n {
            GeneralName::DNSName(d) => d.as_bytes().eq_ignore_ascii_case(&id.data),
            _ => false,
        }),
        IdType::RFC822_ADDR => names.iter().any(|n| match n {
            GeneralName::RFC822Name(m) => m.as_bytes().eq_ignore_ascii_case(&id.data),
            _ => false,
        }),
        _ => false,
    };
    if matches {
        return Ok(());
    }
    Err(CertError::IdMismatch {
        id: display_id(id),
        subject: cert.subject().to_string(),
    })
}

/// An identity for logs: address, name, or hex for a DN/key ID.
pub fn display_id(id: &Id) -> String {
    let ip = match id.id_type {
        IdType::IPV4_ADDR => <[u8; 4]>::try_from(id.data.as_slice())
            .ok()
            .map(IpAddr::from),
        IdType::IPV6_ADDR => <[u8; 16]>::try_from(id.data.as_slice())
            .ok()
            .map(IpAddr::from),
        _ => None,
    };
    match (ip, id.id_type) {
        (Some(ip), _) => ip.to_string(),
        (None, IdType::FQDN | IdType::RFC822_ADDR) => {
            String::from_utf8_lossy(&id.data).into_owned()
        }
        (None, IdType::DER_ASN1_DN) => x509_parser::x509::X509Name::from_der(&id.data)
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|_| "malformed DN".into()),
        _ => format!("type {} id", id.id_type),
    }
}

use x509_parser::prelude::FromDer;
