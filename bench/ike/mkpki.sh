#!/bin/bash
# mkpki.sh DIR - scripts/bench-ike's test PKI, fresh per run, made by strongSwan's `pki`
# (ECDSA P-256 throughout). Test material only.
#   DIR/ca.{pem,key}    the bench CA; DIR/crl.pem its (empty) CRL: revocation = strict
#   DIR/b.{pem,key}     the host under test: SAN 10.77.0.2 (towards the load), 10.79.0.2
#   DIR/load.{pem,key}  every load peer: one identity, SAN load.bench (FQDN)
#   DIR/peer.{pem,key}  c, the peer of the first-packet flows: SAN peer.bench
# Keys are SEC1 PEM, mode 0600 (the agent refuses group- or other-readable keys).
set -euo pipefail
out=${1:?usage: mkpki.sh DIR}
rm -rf "$out"; mkdir -p "$out"; cd "$out"
echo 'pki { load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey sha2 revocation }' >pki.strongswan.conf
export STRONGSWAN_CONF=$out/pki.strongswan.conf
umask 077
O="C=CH, O=xfrm-agent bench"
pki --gen --type ecdsa --size 256 --outform pem >ca.key
pki --self --ca --lifetime 30 --in ca.key --type ecdsa --dn "$O, CN=bench CA" --outform pem >ca.pem
issue() { # name cn san...
  local name=$1 cn=$2; shift 2
  local sans=(); for s in "$@"; do sans+=(--san "$s"); done
  pki --gen --type ecdsa --size 256 --outform pem >"$name.key"
  pki --issue --in "$name.key" --type priv --cacert ca.pem --cakey ca.key --lifetime 30 \
    --dn "$O, CN=$cn" "${sans[@]}" --flag serverAuth --flag clientAuth --outform pem >"$name.pem"
}
issue b 10.77.0.2 10.77.0.2 10.79.0.2
issue load load.bench load.bench
issue peer peer.bench peer.bench
pki --signcrl --cacert ca.pem --cakey ca.key --lifetime 30 --outform pem >crl.pem
chmod 644 ./*.pem
chmod 600 ./*.key
