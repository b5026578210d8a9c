#!/bin/bash
# interop.sh [OUTDIR] - examples/lab_peer (the ike crate) against strongSwan's charon
# inside User-Mode Linux, once as initiator and once as responder, each time with an IKE
# SA rekey and then a Child SA rekey (PFS) through the new IKE SA (inside.sh). Checks that
# our Child SA keys equal the kernel SAs charon installed, and that our SKEYSEED and SK_*
# equal the ones charon logs (`ike = 4`), for the initial exchange and the IKE SA rekey.
# Then charon configured like Windows (conf/b-windows.swanctl.conf, no RFC 7427) initiates
# to us: AES-CBC-256 + HMAC-SHA2-256, DH 14, AUTH method 9, no IDr.
# Last, both ends hold RSA-4096 chains of three (root -> intermediate -> host) and the path
# has an MTU of 1280 and drops IP fragments: each side initiates once, and IKE_AUTH must
# cross as IKE fragments (RFC 7383), counted by iptables at each end.
# Self-contained: a fresh PKI from strongSwan's `pki` per run (mkpki.sh), charon b's
# config in conf/. Needs root, user-mode-linux and strongSwan (scripts/install-deps).
# Usually run as `scripts/lab test ike`. Prints PASS/FAIL lines and "N passed, M failed";
# exits non-zero on any failure. Default OUTDIR: target/ike-lab/interop.
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}
case $target in /*) ;; *) target=$repo/$target ;; esac
out=$(readlink -m "${1:-$target/ike-lab/interop}")
for tool in linux.uml swanctl pki /usr/lib/ipsec/charon; do
  command -v "$tool" >/dev/null || { echo "interop: $tool missing (scripts/install-deps)" >&2; exit 2; }
done
# Inside UML /tmp and /run are private tmpfs; scripts/uml-run binds the checkout and the
# cargo target directory back at their paths, so an OUTDIR in either is reachable.
case $out/ in
  "$repo"/* | "$target"/*) ;;
  /tmp/* | /run/*) echo "interop: $out: inside UML /tmp and /run are private tmpfs" >&2; exit 2 ;;
esac
mkdir -p "$out"
rm -rf "$out"/pki "$out"/swanctl-b "$out"/swanctl-b-windows "$out"/swanctl-b-frag; rm -f "$out"/*.txt "$out"/*.log "$out"/*.conf "$out"/*.stderr
nice -n 10 cargo build -q -p ike --example lab_peer
export IKE_OUT=$out LAB_PEER=$target/debug/examples/lab_peer
"$here/mkpki.sh" "$out" >"$out/mkpki.txt" 2>&1 || { cat "$out/mkpki.txt" >&2; exit 1; }
# One UML boot at a time on this machine (other labs share it); the limit counts once
# the lock is held.
limit=${IKE_TIMEOUT:-420}
# shellcheck disable=SC2016
flock /tmp/uml.lock bash -c 't0=$EPOCHREALTIME
  timeout --kill-after=10 "$1" "$2/scripts/uml-run" --timeout "$(($1 - 10))" -- bash "$3/inside.sh"
  echo "uml $t0 $EPOCHREALTIME" >>"$IKE_OUT/times.txt"' \
  sh "$limit" "$repo" "$here" >"$out/console.txt" 2>&1 || true

# Judge whatever the run left: a missing file (UML timed out, a step failed) is empty, so
# its checks FAIL rather than the script stopping.
set +e
for role in initiate respond windows frag-initiate frag-respond; do
  touch "$out/ours-$role.txt" "$out/xfrm-$role.txt" "$out/sas-$role.txt"
done
touch "$out/charon-b.log" "$out/charon-b-initiate.log" "$out/charon-b-respond.log" "$out/times.txt"
touch "$out/charon-b-windows.log" "$out/charon-b-frag-initiate.log" "$out/charon-b-frag-respond.log" "$out/ping-frag.txt"
touch "$out/counters-frag-ping.txt" "$out/counters-frag-initiate.txt" "$out/counters-frag-respond.txt"
pass=0 fail=0
check() {
  if [ "$2" = "$3" ] && [ -n "$2" ]; then echo "PASS $1"; pass=$((pass + 1))
  else echo "FAIL $1: '$2' is not '$3'"; fail=$((fail + 1)); fi
}
# ip xfrm state prints "proto esp spi 0xSPI ..." and then "aead rfc4106(gcm(aes)) 0xKEY 128".
# With AES-CBC the line is "enc cbc(aes) 0xKEY".
kernel_key() { awk -v spi="0x$2" '$3=="spi" && $4==spi {f=1} f && ($1=="aead" || $1=="enc") {print $3; exit}' "$1" | sed 's/^0x//'; }
# charon's `ike = 4` dumps, one line per derived IKE SA: "SKEYSEED=hex Sk_d=hex ...". A dump
# is "TIME THREAD[IKE] <name> LABEL => N bytes @ ADDR" and then "... OFFSET: HEX x16  ascii"
# lines; threads interleave, so each dump is followed by its thread's number.
charon_keymat() {
  awk '$2 ~ /\[IKE\]$/ && ($4 == "SKEYSEED" || ($4 ~ /^Sk_[a-z]+$/ && $5 == "secret")) {
         for (i = 5; i < NF; i++) if ($i == "=>") { left[$2] = $(i + 1); name[$2] = $4; hex[$2] = "" }
         next }
       ($2 in left) && left[$2] > 0 && $4 ~ /^[0-9]+:$/ {
         for (i = 5; i <= NF && i <= 20 && left[$2] > 0; i++) { hex[$2] = hex[$2] tolower($i); left[$2]-- }
         if (left[$2] == 0) {
           if (name[$2] == "SKEYSEED" && line != "") { print line; line = "" }
           line = line (line == "" ? "" : " ") name[$2] "=" hex[$2]
         } }
       END { if (line != "") print line }' "$1"
}
# ours: "keymat spi_i=.. spi_r=.. SKEYSEED=.. Sk_d=.." (examples/lab_peer)
our_keymat() { sed -n 's/^keymat spi_i=[0-9a-f]* spi_r=[0-9a-f]* //p' "$1"; }
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
sk_keys() { tr ' ' '\n' <<<"$1" | grep '^Sk_' | tr '\n' ' '; }

for role in initiate respond; do
  ours=$out/ours-$role.txt xfrm=$out/xfrm-$role.txt
  log=$out/charon-b-respond.log; [ $role = respond ] || log=$out/charon-b-initiate.log
  read -r spi_in spi_out < <(sed -n 's/^child spi_in=\([0-9a-f]*\) spi_out=\([0-9a-f]*\).*/\1 \2/p' "$ours" 2>/dev/null | tail -1) || true
  check "$role: peer authenticated by the lab CA" "$(grep -c '^peer authority=lab' "$ours")" 1
  check "$role: our outbound key = charon's inbound SA ${spi_out:-}" "$(sed -n 's/^key_out=//p' "$ours" | tail -1)" "$(kernel_key "$xfrm" "${spi_out:-x}")"
  check "$role: our inbound key = charon's outbound SA ${spi_in:-}" "$(sed -n 's/^key_in=//p' "$ours" | tail -1)" "$(kernel_key "$xfrm" "${spi_in:-x}")"
  check "$role: charon lists the IKE SA established" "$(grep -c ESTABLISHED "$out/sas-$role.txt")" 1
  check "$role: the Child SA was rekeyed" "$(grep -c '^child .* rekeyed=[0-9a-f]' "$ours")" 1
  check "$role: the IKE SA was rekeyed, the old one deleted" "$(grep -c '^event \(IkeRekeyed\|Deleted\)' "$ours")" 2
  check "$role: charon saw the IKE SA rekeyed" "$(grep -c 'IKE_SA host\[[0-9]*\] rekeyed' "$log")" 1
  # charon keeps a rekeyed inbound SA a few seconds (delete_rekeyed_delay): its log says it closed the old one.
  first_out=$(sed -n 's/^child spi_in=[0-9a-f]* spi_out=\([0-9a-f]*\) .* rekeyed=none$/\1/p' "$ours" | head -1)
  check "$role: charon closed the first Child SA (its inbound SPI ${first_out:-?})" "$(grep -cE "closing CHILD_SA host\{[0-9]+\} with SPIs ${first_out:-x}_i" "$log")" 1
  mapfile -t mine < <(our_keymat "$ours")
  mapfile -t theirs < <(charon_keymat "$log")
  check "$role: two IKE SAs derived at each end" "${#mine[@]} ${#theirs[@]}" "2 2"
  i=0
  for exchange in "initial exchange" "IKE SA rekey"; do
    check "$role: $exchange: our SKEYSEED = charon's" "$(field SKEYSEED "${mine[i]:-}")" "$(field SKEYSEED "${theirs[i]:-}")"
    check "$role: $exchange: our SK_d/ei/er/pi/pr = charon's" "$(sk_keys "${mine[i]:-}")" "$(sk_keys "${theirs[i]:-}")"
    i=$((i + 1))
  done
done
# 3. charon configured like Windows initiated; we responded.
ours=$out/ours-windows.txt xfrm=$out/xfrm-windows.txt log=$out/charon-b-windows.log
read -r spi_in spi_out < <(sed -n 's/^child spi_in=\([0-9a-f]*\) spi_out=\([0-9a-f]*\).*/\1 \2/p' "$ours" 2>/dev/null | tail -1) || true
check "windows: peer authenticated by the lab CA" "$(grep -c '^peer authority=lab' "$ours")" 1
check "windows: Child SA is AES-CBC-256 + HMAC-SHA2-256" "$(grep -c '^child .* cipher=AesCbcHmacSha256 { bits: 256 }' "$ours")" 1
check "windows: our outbound key = charon's inbound SA ${spi_out:-}" "$(sed -n 's/^key_out=//p' "$ours" | tail -1)" "$(kernel_key "$xfrm" "${spi_out:-x}")"
check "windows: our inbound key = charon's outbound SA ${spi_in:-}" "$(sed -n 's/^key_in=//p' "$ours" | tail -1)" "$(kernel_key "$xfrm" "${spi_in:-x}")"
check "windows: charon lists the IKE SA established" "$(grep -c ESTABLISHED "$out/sas-windows.txt")" 1
# The profile itself: charon announced no RFC 7427 hashes and sent no IDr.
check "windows: charon sent no SIGNATURE_HASH_ALGORITHMS" "$(grep 'generating IKE_SA_INIT request 0 ' "$log" | grep -vc 'HASH_ALG')" 1
check "windows: charon's IKE_AUTH request has no IDr" "$(grep 'generating IKE_AUTH request 1 \[' "$log" | grep -vc 'IDr')" 1
check "windows: charon chose DH group 14" "$(grep -c 'selected proposal: IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048' "$log")" 1
# Without RFC 7427 at charon's end we sign with method 9 (charon names it ECDSA-256).
check "windows: charon verified our AUTH method 9" "$(grep -cE "authentication of '10\.77\.0\.1' with ECDSA-256 (signature )?successful" "$log")" 1
check "respond: charon deleted the old Child SA, we removed it" "$(grep -c '^event ChildDeleted' "$out/ours-respond.txt")" 1
# 4. RSA-4096 chains across a 1280-byte path that drops IP fragments.
# counter NETNS NAME FILE: packets of the rules commented NAME in NETNS's part of FILE
# (iptables -L -v -x: packets first, the comment last).
counter() { sed -n "/^netns $1\$/,/^netns /p" "$3" | awk -v name="$2" '
  $(NF - 1) == name && $NF == "*/" { sum += $1; seen = 1 } END { if (seen) print sum }'; }
check "frag path: a 1400-byte ping does not cross" "$(sed -n 's/^ping rc //p' "$out/ping-frag.txt")" 1
ipfrag=$(counter b ipfrag "$out/counters-frag-ping.txt")
check "frag path: b dropped its IP fragments (${ipfrag:-?})" "$(( ${ipfrag:-0} > 0 ))" 1
for role in initiate respond; do
  ours=$out/ours-frag-$role.txt xfrm=$out/xfrm-frag-$role.txt log=$out/charon-b-frag-$role.log
  cnt=$out/counters-frag-$role.txt
  read -r spi_in spi_out < <(sed -n 's/^child spi_in=\([0-9a-f]*\) spi_out=\([0-9a-f]*\).*/\1 \2/p' "$ours" 2>/dev/null | tail -1) || true
  check "frag-$role: peer authenticated through the RSA intermediate" "$(grep -c '^peer authority=lab subject=.*CN=10.77.0.2' "$ours")" 1
  check "frag-$role: our outbound key = charon's inbound SA ${spi_out:-}" "$(sed -n 's/^key_out=//p' "$ours" | tail -1)" "$(kernel_key "$xfrm" "${spi_out:-x}")"
  check "frag-$role: our inbound key = charon's outbound SA ${spi_in:-}" "$(sed -n 's/^key_in=//p' "$ours" | tail -1)" "$(kernel_key "$xfrm" "${spi_in:-x}")"
  check "frag-$role: charon sent its intermediate" "$(grep -c 'sending issuer cert.*CN=lab RSA intermediate' "$log")" 1
  # charon logs the whole message's size when it splits its IKE_AUTH and reassembles ours.
  split=$(sed -n 's/.*splitting IKE message (\([0-9]*\) bytes) into [0-9]* fragments.*/\1/p' "$log" | head -1)
  joined=$(sed -n 's/.*reassembled fragmented IKE message (\([0-9]*\) bytes).*/\1/p' "$log" | head -1)
  check "frag-$role: charon's IKE_AUTH (${split:-?} bytes) exceeds the path" "$(( ${split:-0} + 28 > 1280 ))" 1
  check "frag-$role: our IKE_AUTH (${joined:-?} bytes) exceeds the path" "$(( ${joined:-0} + 28 > 1280 ))" 1
  skf="$(counter a skf "$cnt") $(counter b skf "$cnt")"
  check "frag-$role: IKE fragments crossed both ways (a b: $skf)" "$(awk '{ print ($1 >= 2 && $2 >= 2) }' <<<"$skf")" 1
  check "frag-$role: no IP fragment, no IKE datagram over 1280 bytes" \
    "$(counter a ipfrag "$cnt") $(counter b ipfrag "$cnt") $(counter a big "$cnt") $(counter b big "$cnt")" "0 0 0 0"
done
awk '$1 == "uml" { printf "UML run (boot to power-off): %.1f s\n", $3 - $2 }' "$out/times.txt" 2>/dev/null || true
if [ "$fail" != 0 ]; then
  echo "--- UML console (inside.sh's own errors), tail:"; tail -n 15 "$out/console.txt"
fi
echo "$pass passed, $fail failed (results in $out)"
[ "$fail" = 0 ]
