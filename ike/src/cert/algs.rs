//! webpki signature verification over RustCrypto (we build webpki without ring/aws-lc).

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rustls_pki_types::{
    alg_id, AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm,
};

/// ECDSA P-256 with SHA-256 (DER signature).
#[derive(Debug)]
struct EcdsaP256Sha256;

impl SignatureVerificationAlgorithm for EcdsaP256Sha256 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &sig).map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA256
    }
}

/// Ed25519 (RFC 8410).
#[derive(Debug)]
struct Ed25519;

impl SignatureVerificationAlgorithm for Ed25519 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key: &[u8; 32] = public_key.try_into().map_err(|_| InvalidSignature)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(key).map_err(|_| InvalidSignature)?;
        let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| InvalidSignature)?;
        key.verify_strict(message, &sig)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }
}

/// RSA PKCS#1 v1.5 with SHA-256/384/512, modulus 2048 to 8192 bits.
struct RsaPkcs1<D> {
    signature_alg: AlgorithmIdentifier,
    digest: std::marker::PhantomData<fn() -> D>,
}

impl<D> std::fmt::Debug for RsaPkcs1<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaPkcs1({:?})", self.signature_alg)
    }
}

impl<D> SignatureVerificationAlgorithm for RsaPkcs1<D>
where
    D: sha2::Digest + rsa::pkcs8::AssociatedOid + Send + Sync,
{
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key = rsa::PublicKey::from_pkcs1_der(public_key).map_err(|_| InvalidSignature)?;
        if !(256..=1024).contains(&key.size()) {
            return Err(InvalidSignature);
        }
        let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| InvalidSignature)?;
        rsa::pkcs1v15::VerifyingKey::<D>::new(key)
            .verify(message, &sig)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.signature_alg
    }
}

static RSA_SHA256: RsaPkcs1<sha2::Sha256> = RsaPkcs1 {
    signature_alg: alg_id::RSA_PKCS1_SHA256,
    digest: std::marker::PhantomData,
};
static RSA_SHA384: RsaPkcs1<sha2::Sha384> = RsaPkcs1 {
    signature_alg: alg_id::RSA_PKCS1_SHA384,
    digest: std::marker::PhantomData,
};
static RSA_SHA512: RsaPkcs1<sha2::Sha512> = RsaPkcs1 {
    signature_alg: alg_id::RSA_PKCS1_SHA512,
    digest: std::marker::PhantomData,
};

/// The certificate and CRL signature algorithms we accept.
pub(crate) static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    &EcdsaP256Sha256,
    &Ed25519,
    &RSA_SHA256,
    &RSA_SHA384,
    &RSA_SHA512,
];
