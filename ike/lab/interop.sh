#!/bin/bash
# interop.sh - the ike crate's initiator against strongSwan's charon (responder, netns b)
# inside UML; checks that our Child SA keys equal the kernel SAs charon installed.
# Run from the project checkout: ike/lab/interop.sh [OUTDIR]   (prints PASS/FAIL lines)
# Uses ../shared/ike-lab (topology, charon-ns.sh, PKI) read-only; see LAB-NOTES-IKE.md.
set -euo pipefail
lab=${IKE_LAB:-$(readlink -f ../shared/ike-lab)}
out=$(readlink -m "${1:-$PWD/target/ike-lab/interop}")
mkdir -p "$out"; rm -f "$out"/*
nice -n 10 cargo build -q -p ike --example lab_initiator
bin=$(readlink -f target/debug/examples/lab_initiator)
export IKE_OUT=$out LAB=$lab BIN=$bin
flock /tmp/uml.lock timeout --kill-after=10 300 scripts/uml-run --timeout 290 -- bash -c '
  set -u; P=$LAB/pki
  $LAB/topo.sh up && $LAB/charon-ns.sh start b > $IKE_OUT/swanctl-load.txt 2>&1
  ip netns exec a $BIN 10.77.0.1:500 10.77.0.2:500 $P/a.pem $P/a.key $P/ca.pem $P/crl.pem > $IKE_OUT/ours.txt 2>&1
  echo "initiator exit $?" >> $IKE_OUT/ours.txt
  $LAB/charon-ns.sh swanctl b --list-sas > $IKE_OUT/sas.txt 2>&1
  ip -n b xfrm state > $IKE_OUT/xfrm-b.txt 2>&1
  $LAB/charon-ns.sh stop b; $LAB/topo.sh down' > "$out/console.txt" 2>&1 || true
cat "$out/ours.txt"
# ip xfrm state prints "src S dst D / proto esp spi 0xSPI ... / aead rfc4106(gcm(aes)) 0xKEY 128".
kernel_key() { awk -v spi="0x$1" '$3=="spi" && $4==spi {f=1} f && $1=="aead" {print $3; exit}' "$out/xfrm-b.txt" | sed 's/^0x//'; }
read -r spi_in spi_out < <(sed -n 's/^child spi_in=\([0-9a-f]*\) spi_out=\([0-9a-f]*\).*/\1 \2/p' "$out/ours.txt")
pass=0; fail=0
check() { if [ "$2" = "$3" ] && [ -n "$2" ]; then echo "PASS $1"; pass=$((pass+1)); else echo "FAIL $1: ours '$2' kernel '$3'"; fail=$((fail+1)); fi; }
check "peer authenticated by the lab CA" "$(grep -c '^peer authority=lab' "$out/ours.txt")" 1
check "outbound key = charon's inbound SA $spi_out" "$(sed -n 's/^key_out=//p' "$out/ours.txt")" "$(kernel_key "${spi_out:-x}")"
check "inbound key = charon's outbound SA $spi_in" "$(sed -n 's/^key_in=//p' "$out/ours.txt")" "$(kernel_key "${spi_in:-x}")"
check "charon lists the SA established" "$(grep -c ESTABLISHED "$out/sas.txt")" 1
echo "$pass passed, $fail failed (results in $out)"
[ "$fail" = 0 ]
