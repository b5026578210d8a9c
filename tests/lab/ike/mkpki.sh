#!/bin/bash
# mkpki.sh DIR - the IKEv2 lab's PKI, made fresh for every run by strongSwan's `pki` (an
# issuer independent of our code); no key is committed. Test material only.
#   DIR/corp-ca.{pem,key}      the lab CA ("corp" in the policy), ECDSA P-256
#   DIR/corp.crl               its CRL, revoking roamer-revoked
#   DIR/HOST-cert.{pem,key}    from the corp CA, SAN = the host's IPv4 and IPv6 addresses:
#                              site, db, mp (inventory) and roamer (not in the inventory);
#                              gw-east, gw-west: the tunnel lab's gateways (transit addresses)
#   DIR/roamer-revoked-cert.*  the roamer's addresses, corp CA, revoked by corp.crl
#   DIR/other-ca.{pem,key}     another CA, trusted by nobody in the policy
#   DIR/roamer-other-cert.*    the roamer's addresses, issued by the other CA
#   DIR/partner-ca.{pem,key}   a partner's CA ("partner", scope named: federation)
#   DIR/roamer-partner-cert.*  the roamer's addresses, issued by the partner CA
# Keys are SEC1 PEM, mode 0600 (the agent refuses group- or other-readable keys).
set -euo pipefail
out=${1:?usage: mkpki.sh DIR}
rm -rf "$out"; mkdir -p "$out"; cd "$out"
# Only the plugins pki needs (Debian's default list also tries the TPM plugin).
echo 'pki { load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey sha2 revocation }' > pki.strongswan.conf
export STRONGSWAN_CONF=$out/pki.strongswan.conf
umask 077
O="C=CH, O=xfrm-agent lab"
ca() { # name cn
  pki --gen --type ecdsa --size 256 --outform pem > "$1.key"
  pki --self --ca --lifetime 30 --in "$1.key" --type ecdsa --dn "$O, CN=$2" --outform pem > "$1.pem"
}
issue() { # name ca ipv4 ipv6
  pki --gen --type ecdsa --size 256 --outform pem > "$1-cert.key"
  pki --issue --in "$1-cert.key" --type priv --cacert "$2.pem" --cakey "$2.key" --lifetime 30 \
      --dn "$O, CN=$3" --san "$3" --san "$4" --flag serverAuth --flag clientAuth \
      --outform pem > "$1-cert.pem"
}
ca corp-ca "lab corp CA"
ca other-ca "lab other CA"
ca partner-ca "lab partner CA"
issue site corp-ca 10.10.0.10 fd00:10::10
issue db corp-ca 10.10.0.11 fd00:10::11
issue mp corp-ca 10.20.0.20 fd00:20::20
issue roamer corp-ca 10.20.0.40 fd00:20::40
issue gw-east corp-ca 10.93.0.1 fd00:93::1
issue gw-west corp-ca 10.93.0.2 fd00:93::2
issue roamer-revoked corp-ca 10.20.0.40 fd00:20::40
issue roamer-other other-ca 10.20.0.40 fd00:20::40
issue roamer-partner partner-ca 10.20.0.40 fd00:20::40
# `revocation = "strict"` wants a current CRL: 30 days (pki's default is 15).
pki --signcrl --cacert corp-ca.pem --cakey corp-ca.key --lifetime 30 \
    --reason key-compromise --cert roamer-revoked-cert.pem --outform pem > corp.crl
chmod 644 ./*.pem corp.crl
chmod 600 ./*.key
