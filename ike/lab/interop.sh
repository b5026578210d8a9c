#!/bin/bash
# interop.sh - the ike crate against strongSwan's charon (netns b) inside UML, once with
# us as initiator and once as responder, each time with an IKE SA rekey and then a Child SA
# rekey (CREATE_CHILD_SA with PFS) through the new IKE SA, started by us, then by charon;
# checks that our latest Child SA keys equal the kernel SAs charon installed.
# Run from the project checkout: ike/lab/interop.sh [OUTDIR]
# Prints PASS/FAIL lines and "N passed, M failed". Uses ../shared/ike-lab read-only
# (topology, charon-ns.sh, PKI; see LAB-NOTES-IKE.md).
set -euo pipefail
lab=${IKE_LAB:-$(readlink -f ../shared/ike-lab)}
out=$(readlink -m "${1:-$PWD/target/ike-lab/interop}")
mkdir -p "$out"; rm -f "$out"/*
nice -n 10 cargo build -q -p ike --example lab_peer
bin=$(readlink -f target/debug/examples/lab_peer)
export IKE_OUT=$out LAB=$lab BIN=$bin
# shellcheck disable=SC2016
flock /tmp/uml.lock timeout --kill-after=10 300 scripts/uml-run --timeout 290 -- bash -c '
  set -u; P=$LAB/pki; peer() { ip netns exec a $BIN $1 10.77.0.1 10.77.0.2 $P/a.pem $P/a.key $P/ca.pem $P/crl.pem ${2:-}; }
  $LAB/topo.sh up
  $LAB/charon-ns.sh start b > $IKE_OUT/swanctl-load.txt 2>&1
  peer initiate rekey > $IKE_OUT/ours-initiate.txt 2>&1
  $LAB/charon-ns.sh swanctl b --list-sas > $IKE_OUT/sas-initiate.txt 2>&1
  ip -n b xfrm state > $IKE_OUT/xfrm-initiate.txt 2>&1
  cp $IKE_OUT/charon-b.log $IKE_OUT/charon-b-initiate.log
  $LAB/charon-ns.sh stop b; $LAB/charon-ns.sh start b >> $IKE_OUT/swanctl-load.txt 2>&1
  peer respond await-rekey > $IKE_OUT/ours-respond.txt 2>&1 & sleep 0.5
  timeout 30 $LAB/charon-ns.sh swanctl b --initiate --child host > $IKE_OUT/initiate-b.txt 2>&1
  timeout 30 $LAB/charon-ns.sh swanctl b --rekey --ike host >> $IKE_OUT/initiate-b.txt 2>&1
  sleep 1; timeout 30 $LAB/charon-ns.sh swanctl b --rekey --child host >> $IKE_OUT/initiate-b.txt 2>&1
  wait
  $LAB/charon-ns.sh swanctl b --list-sas > $IKE_OUT/sas-respond.txt 2>&1
  ip -n b xfrm state > $IKE_OUT/xfrm-respond.txt 2>&1
  $LAB/charon-ns.sh stop b; $LAB/topo.sh down' > "$out/console.txt" 2>&1 || true
pass=0; fail=0
check() { if [ "$2" = "$3" ] && [ -n "$2" ]; then echo "PASS $1"; pass=$((pass+1)); else echo "FAIL $1: ours '$2' kernel '$3'"; fail=$((fail+1)); fi; }
# ip xfrm state prints "proto esp spi 0xSPI ..." and then "aead rfc4106(gcm(aes)) 0xKEY 128".
kernel_key() { awk -v spi="0x$2" '$3=="spi" && $4==spi {f=1} f && $1=="aead" {print $3; exit}' "$1" | sed 's/^0x//'; }
for role in initiate respond; do
  ours=$out/ours-$role.txt; xfrm=$out/xfrm-$role.txt
  cat "$ours"
  read -r spi_in spi_out < <(sed -n 's/^child spi_in=\([0-9a-f]*\) spi_out=\([0-9a-f]*\).*/\1 \2/p' "$ours" | tail -1) || true
  check "$role: peer authenticated by the lab CA" "$(grep -c '^peer authority=lab' "$ours")" 1
  check "$role: our outbound key = charon's inbound SA ${spi_out:-}" "$(sed -n 's/^key_out=//p' "$ours" | tail -1)" "$(kernel_key "$xfrm" "${spi_out:-x}")"
  check "$role: our inbound key = charon's outbound SA ${spi_in:-}" "$(sed -n 's/^key_in=//p' "$ours" | tail -1)" "$(kernel_key "$xfrm" "${spi_in:-x}")"
  check "$role: charon lists the IKE SA established" "$(grep -c ESTABLISHED "$out/sas-$role.txt")" 1
done
for role in initiate respond; do
  check "$role: the Child SA was rekeyed" "$(grep -c '^child .* rekeyed=[0-9a-f]' "$out/ours-$role.txt")" 1
  check "$role: the IKE SA was rekeyed, the old one deleted" "$(grep -c '^event \(IkeRekeyed\|Deleted\)' "$out/ours-$role.txt")" 2
done
check "initiate: charon saw the IKE SA rekeyed" "$(grep -c 'IKE_SA host\[[0-9]*\] rekeyed' "$out/charon-b-initiate.log")" 1
check "respond: charon saw the IKE SA rekeyed" "$(grep -c 'IKE_SA host\[[0-9]*\] rekeyed' "$out/charon-b.log")" 1
# charon keeps a rekeyed inbound SA a few seconds (delete_rekeyed_delay); its log says it closed the old one.
check "initiate: charon closed the old Child SA on our Delete" "$(grep -c 'closing CHILD_SA host{2} with SPIs' "$out/charon-b-initiate.log")" 1
check "respond: charon deleted the old Child SA, we removed it" "$(grep -c '^event ChildDeleted' "$out/ours-respond.txt")" 1
echo "$pass passed, $fail failed (results in $out)"
[ "$fail" = 0 ]
