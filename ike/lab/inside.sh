#!/bin/bash
# inside.sh - the interop scenario; runs as root inside UML (started by interop.sh).
#   a (10.77.0.1, examples/lab_peer) <-- veth --> b (10.77.0.2, charon)
# 1. we initiate, rekey the IKE SA, then the Child SA (PFS) through the new IKE SA;
#    then a tunnel-mode Child SA between two networks (charon's child `net`);
# 2. charon initiates (swanctl --initiate), rekeys the IKE SA, then the Child SA;
# 3. charon configured like Windows (IKE_PROFILE=windows) initiates; we respond.
# 4. the path gets an MTU of 1280 and drops IP fragments; with RSA-4096 chains of three
#    (IKE_PROFILE=frag) we initiate, then charon does: IKE_AUTH crosses as IKE fragments.
# Each step waits for a condition (a socket, a line of output) with a timeout, never for a
# fixed time. Results go to $IKE_OUT; interop.sh judges them on the host.
# Env: IKE_OUT (with pki/ and swanctl-b/ from mkpki.sh), LAB_PEER (the example's binary),
#      IKE_WAIT (seconds per wait, default 60).
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=${IKE_OUT:?} cns=$here/charon-ns.sh pki=$IKE_OUT/pki
wait_s=${IKE_WAIT:-60}
# our certificate (and intermediates), key, CA, CRLs
cred=("$pki/a.pem" "$pki/a.key" "$pki/ca.pem" "$pki/crl.pem")
peer() {
  ip netns exec a "${LAB_PEER:?}" "$1" 10.77.0.1 10.77.0.2 "${cred[@]}" ${2:+"$2"}
}
# wait_for FILE REGEX: until a line of FILE matches REGEX (extended), at most IKE_WAIT s.
wait_for() {
  local end=$((SECONDS + wait_s))
  until grep -qE "$2" "$1" 2>/dev/null; do
    [ $SECONDS -lt $end ] || { echo "inside: no /$2/ in ${1##*/} after ${wait_s} s" >&2; return 1; }
    sleep 0.1
  done
}
sw() { timeout "$wait_s" "$cns" swanctl b "$@"; }
mark() { read -r up _ </proc/uptime; echo "$1 $up" >>"$out/times.txt"; }

# 1. we initiate and rekey both SAs
initiate_role() {
  peer initiate rekey >"$out/ours-initiate.txt" 2>&1
  sw --list-sas >"$out/sas-initiate.txt" 2>&1
  ip -n b xfrm state >"$out/xfrm-initiate.txt" 2>&1
}

# 1b. we initiate a tunnel-mode Child SA between 10.1.0.0/24 (ours) and 10.2.0.0/24
tunnel_role() {
  LAB_PEER_TUNNEL=10.1.0.0-10.1.0.255:10.2.0.0-10.2.0.255 peer initiate >"$out/ours-tunnel.txt" 2>&1
  sw --list-sas >"$out/sas-tunnel.txt" 2>&1
  ip -n b xfrm state >"$out/xfrm-tunnel.txt" 2>&1
}

# 2. charon initiates and rekeys both SAs
respond_role() {
  peer respond await-rekey >"$out/ours-respond.txt" 2>&1 &
  local peer_pid=$!
  {
    wait_for "$out/ours-respond.txt" '^listening' &&
      sw --initiate --child host &&
      sw --rekey --ike host &&
      # Our end deleted the old IKE SA: the rekey is over, the Child SA lives in the new one.
      wait_for "$out/ours-respond.txt" '^event Deleted' &&
      sw --rekey --child host
  } >"$out/initiate-b.txt" 2>&1
  wait "$peer_pid"
  sw --list-sas >"$out/sas-respond.txt" 2>&1
  ip -n b xfrm state >"$out/xfrm-respond.txt" 2>&1
}

# 3. charon as a Windows peer initiates: AES-CBC-256, DH 14, AUTH method 9, no IDr
windows_role() {
  peer respond >"$out/ours-windows.txt" 2>&1 &
  local peer_pid=$!
  {
    wait_for "$out/ours-windows.txt" '^listening' &&
      sw --initiate --child win &&
      wait_for "$out/ours-windows.txt" '^child '
  } >"$out/initiate-windows.txt" 2>&1
  sw --list-sas >"$out/sas-windows.txt" 2>&1
  ip -n b xfrm state >"$out/xfrm-windows.txt" 2>&1
  wait "$peer_pid"
}

# 4. A 1280-byte path that drops IP fragments, with counters of what crossed (per netns,
#    in raw PREROUTING: before any reassembly): IP fragments (dropped), IKE datagrams over
#    1280 bytes, IKE fragments (SKF, payload type 53, first after the IKE header; on 4500
#    after the non-ESP marker). iptables, not nft: the UML kernel has no nft ip/inet family.
path_rules() { # netns
  local ipt=(ip netns exec "$1" iptables-legacy -t raw -A PREROUTING)
  "${ipt[@]}" -m u32 --u32 "4&0x3FFF=0x1:0x3FFF" -m comment --comment ipfrag -j DROP &&
    "${ipt[@]}" -p udp --dport 500 -m u32 --u32 "0>>22&0x3C@24>>24=53" -m comment --comment skf &&
    "${ipt[@]}" -p udp --dport 4500 -m u32 --u32 "0>>22&0x3C@28>>24=53" -m comment --comment skf &&
    "${ipt[@]}" -p udp --dport 500 -m length --length 1281:65535 -m comment --comment big &&
    "${ipt[@]}" -p udp --dport 4500 -m length --length 1281:65535 -m comment --comment big
}
narrow_path() { # netns dev
  ip -n "$1" link set "$2" mtu 1280 && path_rules "$1"
}
counters() { # file: both ends' counters, then zeroed
  for n in a b; do
    echo "netns $n"; ip netns exec "$n" iptables-legacy -t raw -L PREROUTING -v -x -n -Z
  done >"$1" 2>&1
}
frag_role() { # initiate|respond
  if [ "$1" = initiate ]; then
    peer initiate >"$out/ours-frag-initiate.txt" 2>&1
  else
    peer respond >"$out/ours-frag-respond.txt" 2>&1 &
    local peer_pid=$!
    {
      wait_for "$out/ours-frag-respond.txt" '^listening' &&
        sw --initiate --child frag
    } >"$out/initiate-frag.txt" 2>&1
    wait "$peer_pid"
  fi
  ip -n b xfrm state >"$out/xfrm-frag-$1.txt" 2>&1
  counters "$out/counters-frag-$1.txt"
}
frag_roles() {
  modprobe -a -q iptable_raw xt_u32 xt_length xt_comment 2>/dev/null
  if ! { narrow_path a va && narrow_path b vb; }; then
    echo "inside: no 1280-byte path" >&2; return 1
  fi
  # The path itself: a 1400-byte ping leaves a as IP fragments, which b drops.
  ip netns exec a ping -c 1 -W 2 -s 1400 10.77.0.2 >"$out/ping-frag.txt" 2>&1
  echo "ping rc $?" >>"$out/ping-frag.txt"
  counters "$out/counters-frag-ping.txt"
  cred=("$pki/a-rsa-chain.pem" "$pki/a-rsa.key" "$pki/rsa-root.pem" "$pki/rsa-crls.pem")
  local role
  for role in initiate respond; do
    if IKE_PROFILE=frag "$cns" start b >>"$out/swanctl-load.txt" 2>&1; then
      frag_role "$role"
    else
      echo "inside: charon b (frag) did not start (swanctl-load.txt)" >&2
    fi
    IKE_PROFILE=frag "$cns" stop b
    cp "$out/charon-b.log" "$out/charon-b-frag-$role.log"
  done
}

mark boot
"$here/topo.sh" up
# A role whose charon did not start is not run: its checks fail on the missing results.
if "$cns" start b >"$out/swanctl-load.txt" 2>&1; then
  mark charon-up
  initiate_role
  # The initiate role's checks read charon's log up to here (its key derivations).
  cp "$out/charon-b.log" "$out/charon-b-initiate.log"
  tunnel_role
else
  echo "inside: charon b did not start (swanctl-load.txt)" >&2
fi
"$cns" stop b
cp "$out/charon-b.log" "$out/charon-b-tunnel.log"
mark initiate-done
if "$cns" start b >>"$out/swanctl-load.txt" 2>&1; then
  respond_role
else
  echo "inside: charon b did not restart (swanctl-load.txt)" >&2
fi
"$cns" stop b
mark respond-done
cp "$out/charon-b.log" "$out/charon-b-respond.log"
if IKE_PROFILE=windows "$cns" start b >>"$out/swanctl-load.txt" 2>&1; then
  windows_role
else
  echo "inside: charon b (windows) did not start (swanctl-load.txt)" >&2
fi
IKE_PROFILE=windows "$cns" stop b
cp "$out/charon-b.log" "$out/charon-b-windows.log"
mark windows-done
frag_roles
mark frag-done
"$here/topo.sh" down
