//! A CRL in the name of one of its authority's CA certificates is loaded only when that
//! certificate's key signed it: a forged one would otherwise stand in for the real one
//! (webpki would only find out when a peer's chain is checked, refusing the authority's
//! every peer). A CRL of another issuer (an intermediate CA, which the peer sends) is
//! checked by webpki against that issuer's certificate when a chain through it is.

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use super::{algs, CertError, CrlInfo};

/// Checks that CRL `der` was issued and signed by one of `anchors`; what it says of itself.
pub(super) fn check(
    authority: &str,
    der: &[u8],
    anchors: &[CertificateDer<'_>],
) -> Result<CrlInfo, CertError> {
    let (_, crl) = CertificateRevocationList::from_der(der)
        .map_err(|e| CertError::Malformed(format!("CRL: {e}")))?;
    let issuer = crl.issuer().as_raw();
    let named: Vec<X509Certificate<'_>> = (anchors.iter())
        .filter_map(|a| X509Certificate::from_der(a).ok().map(|(_, ca)| ca))
        .filter(|ca| ca.subject().as_raw() == issuer)
        .collect();
    let signed =
        || (named.iter()).any(|ca| signed_by(&crl, &ca.public_key().subject_public_key.data));
    if !named.is_empty() && !signed() {
        return Err(CertError::Malformed(format!(
            "CRL in the name of \"{}\" is not signed by that CA certificate's key (forged, or for another CA of that name)",
            crl.issuer()
        )));
    }
    Ok(CrlInfo {
        authority: authority.to_string(),
        issuer: crl.issuer().to_string(),
        number: crl.crl_number().map(|n| n.to_bytes_be()),
        next_update: crl.next_update().map(|t| t.timestamp()),
    })
}

/// Whether `public_key` (the subjectPublicKey bits) signed the CRL's TBS part, under any
/// algorithm we verify with (a key of one type fails every other type's check).
fn signed_by(crl: &CertificateRevocationList<'_>, public_key: &[u8]) -> bool {
    let tbs = crl.tbs_cert_list.as_ref();
    let signature = &crl.signature_value.data;
    algs::ALGORITHMS
        .iter()
        .any(|alg| alg.verify_signature(public_key, tbs, signature).is_ok())
}
