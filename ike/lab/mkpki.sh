#!/bin/bash
# mkpki.sh DIR - a fresh test PKI for the interop lab, issued by strongSwan's `pki` (an
# issuer independent of our code), and charon b's swanctl folder. Made at every run: no
# key is committed. Test material only (no passphrases).
#   DIR/pki/ca.{key,pem}        CA, ECDSA P-256
#   DIR/pki/a.{key,pem}         us (lab_peer): IP SAN 10.77.0.1
#   DIR/pki/b.{key,pem}         charon b: IP SAN 10.77.0.2
#   DIR/pki/crl.pem             CRL revoking a third certificate (revoked.pem, 10.77.0.3)
#   DIR/pki/rsa-{root,int}.{key,pem}  RSA-4096 root CA and intermediate CA
#   DIR/pki/{a,b}-rsa.{key,pem} RSA-4096 host certificates issued by the intermediate;
#                               a-rsa-chain.pem is a's certificate then the intermediate
#   DIR/pki/rsa-crls.pem        the root's and the intermediate's (empty) CRLs
#   DIR/swanctl-b/              SWANCTL_DIR of charon b: swanctl.conf + its credentials
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: mkpki.sh DIR}
pki_dir=$out/pki
rm -rf "$pki_dir"; mkdir -p "$pki_dir"
# Only the plugins pki needs (Debian's default list also tries the TPM plugin and prints
# "TPM 2.0 - could not load libtss2-tcti-tabrmd.so.0").
echo 'pki { load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey sha2 revocation }' > "$out/pki.strongswan.conf"
export STRONGSWAN_CONF=$out/pki.strongswan.conf
cd "$pki_dir"
O="C=CH, O=xfrm-agent IKE lab"
pki --gen --type ecdsa --size 256 --outform pem > ca.key
pki --self --ca --lifetime 30 --in ca.key --type ecdsa --dn "$O, CN=lab CA" --outform pem > ca.pem
issue() { # name ip
  pki --gen --type ecdsa --size 256 --outform pem > "$1.key"
  pki --pub --in "$1.key" --type ecdsa |
    pki --issue --cacert ca.pem --cakey ca.key --type pub --lifetime 30 \
        --dn "$O, CN=$2" --san "$2" --flag serverAuth --flag clientAuth --outform pem > "$1.pem"
}
issue a 10.77.0.1
issue b 10.77.0.2
issue revoked 10.77.0.3
# charon's `revocation = strict` (and our RevocationMode::Strict) want a current CRL.
pki --signcrl --cacert ca.pem --cakey ca.key --lifetime 30 \
    --reason key-compromise --cert revoked.pem --outform pem > crl.pem
# An RSA-4096 chain of three (root -> intermediate -> host): its IKE_AUTH messages carry
# two 4096-bit certificates and a 512-byte signature, far beyond a 1280-byte path MTU.
pki --gen --type rsa --size 4096 --outform pem > rsa-root.key
pki --self --ca --lifetime 30 --in rsa-root.key --type rsa --dn "$O, CN=lab RSA root" --outform pem > rsa-root.pem
pki --gen --type rsa --size 4096 --outform pem > rsa-int.key
pki --pub --in rsa-int.key --type rsa |
  pki --issue --cacert rsa-root.pem --cakey rsa-root.key --type pub --ca --lifetime 30 \
      --dn "$O, CN=lab RSA intermediate" --outform pem > rsa-int.pem
issue_rsa() { # name ip
  pki --gen --type rsa --size 4096 --outform pem > "$1-rsa.key"
  pki --pub --in "$1-rsa.key" --type rsa |
    pki --issue --cacert rsa-int.pem --cakey rsa-int.key --type pub --lifetime 30 \
        --dn "$O, CN=$2" --san "$2" --flag serverAuth --flag clientAuth --outform pem > "$1-rsa.pem"
}
issue_rsa a 10.77.0.1
issue_rsa b 10.77.0.2
cat a-rsa.pem rsa-int.pem > a-rsa-chain.pem
# Strict revocation wants a current CRL from every issuer in the chain.
pki --signcrl --cacert rsa-root.pem --cakey rsa-root.key --lifetime 30 --outform pem > rsa-root.crl
pki --signcrl --cacert rsa-int.pem --cakey rsa-int.key --lifetime 30 --outform pem > rsa-int.crl
cat rsa-root.crl rsa-int.crl > rsa-crls.pem
chmod 600 ./*.key
# swanctl-b: charon b as configured for the interop runs; swanctl-b-windows: the same
# credentials, the Windows-like connection (conf/b-windows.swanctl.conf).
swanctl_dir() { # dir conf
  rm -rf "$1"
  # Every folder swanctl --load-all reads: an absent one prints "opening directory ... failed".
  for x in x509ca x509 private x509crl x509ocsp x509aa x509ac pubkey rsa ecdsa bliss pkcs8 pkcs12; do
    mkdir -p "$1/$x"
  done
  cp "$2" "$1/swanctl.conf"
  cp ca.pem "$1/x509ca/"; cp crl.pem "$1/x509crl/"; cp b.pem "$1/x509/"; cp b.key "$1/private/"
}
swanctl_dir "$out/swanctl-b" "$here/conf/b.swanctl.conf"
swanctl_dir "$out/swanctl-b-windows" "$here/conf/b-windows.swanctl.conf"
# swanctl-b-frag: charon b with the RSA-4096 chain (conf/b-frag.swanctl.conf); it sends
# its intermediate from x509ca/ with its own certificate.
swanctl_dir "$out/swanctl-b-frag" "$here/conf/b-frag.swanctl.conf"
rm "$out/swanctl-b-frag/x509ca/ca.pem" "$out/swanctl-b-frag/x509crl/crl.pem"
rm "$out/swanctl-b-frag/x509/b.pem" "$out/swanctl-b-frag/private/b.key"
cp rsa-root.pem rsa-int.pem "$out/swanctl-b-frag/x509ca/"
cp rsa-root.crl rsa-int.crl "$out/swanctl-b-frag/x509crl/"
cp b-rsa.pem "$out/swanctl-b-frag/x509/"; cp b-rsa.key "$out/swanctl-b-frag/private/"
