#!/bin/bash
# charon-ns.sh - one independent strongSwan charon per network namespace (inside UML).
#   charon-ns.sh start NODE         start charon in netns NODE, wait for its vici socket,
#                                   load $IKE_OUT/swanctl-NODE (made by mkpki.sh)
#   charon-ns.sh stop NODE          stop it (SIGTERM via its pid file, waits for the exit)
#   charon-ns.sh swanctl NODE ARGS  swanctl against NODE's charon (e.g. --list-sas)
# Env: IKE_OUT  the run's folder: NODE.strongswan.conf, charon-NODE.log, NODE.stderr.
#               Not under /run or /tmp: inside UML those are tmpfs, gone at power-off.
#      IKE_WAIT seconds to wait for charon to start or stop (default 60: a loaded machine).
#      IKE_PROFILE=windows  charon behaves like Windows: no RFC 7427 signatures
#               (`signature_authentication = no`) and the swanctl-NODE-windows config.
#      IKE_PROFILE=frag  the swanctl-NODE-frag config (RSA-4096 chain), IKE fragments of
#               at most 1280-byte IP datagrams (its default, made explicit).
# The log is at `ike = 4` and `chd = 4`: SKEYSEED, SK_* and Child SA keys (test keys only).
#
# Why the mount namespace: strongSwan 5.9 hard-codes its pid file as /var/run/charon.pid
# and refuses to start while it exists. Each charon runs under `unshare -m` with
# /run/ike/NODE bind-mounted over /run: inside, the pid file and vici socket are
# /var/run/charon.{pid,vici}; outside /run/ike/NODE/charon.{pid,vici}. Config, certificates
# and log are read by absolute paths, the same inside and outside. Nothing under /etc is
# used: STRONGSWAN_CONF names the node's own strongswan.conf (charon and swanctl read it).
set -euo pipefail
cmd=${1:?usage: charon-ns.sh start|stop|swanctl NODE [ARGS]}
node=${2:?node name (= netns name)}
shift 2
out=${IKE_OUT:?set IKE_OUT}
wait_s=${IKE_WAIT:-60}
rundir=/run/ike/$node
conf=$out/$node.strongswan.conf
uri=unix://$rundir/charon.vici
profile=${IKE_PROFILE:-}
swanctl_dir=$out/swanctl-$node${profile:+-$profile}
# Windows signs with AUTH methods 1 and 9 only and announces no SIGNATURE_HASH_ALGORITHMS.
extra=""
[ "$profile" != windows ] || extra="signature_authentication = no"
[ "$profile" != frag ] || extra="fragment_size = 1280"
export STRONGSWAN_CONF=$conf SWANCTL_DIR=$swanctl_dir

write_conf() {
  cat > "$conf" <<CONF
charon {
  # An explicit plugin list: no stroke socket, no resolve plugin (it would rewrite
  # /etc/resolv.conf, under UML's hostfs the machine's own), no updown, no TPM.
  load = random nonce openssl pem pkcs1 pkcs8 x509 revocation constraints pubkey curve25519 kdf kernel-netlink socket-default vici
  $extra
  filelog {
    log {
      path = $out/charon-$node.log
      time_format = %T
      time_add_ms = yes
      ike_name = yes
      append = yes
      flush_line = yes
      default = 1
      ike = 4
      cfg = 2
      chd = 4
      knl = 2
    }
  }
}
swanctl {
  load = random openssl pem pkcs1 pkcs8 x509 revocation constraints pubkey
  socket = $uri
}
CONF
}

# until CMD succeeds or IKE_WAIT seconds have passed
poll() {
  local end=$((SECONDS + wait_s))
  until "$@"; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.1
  done
}
running() { [ -f "$rundir/charon.pid" ] && kill -0 "$(cat "$rundir/charon.pid")" 2>/dev/null; }

case $cmd in
  start)
    [ -e "/run/netns/$node" ] || { echo "charon-ns: no netns $node" >&2; exit 1; }
    ! running || { echo "charon-ns: charon for $node already running" >&2; exit 1; }
    mkdir -p "$rundir"; rm -f "$rundir/charon.pid" "$rundir/charon.vici"
    write_conf
    : > "$out/charon-$node.log"
    # setsid: charon must not die with the caller's session. ($1 is for the inner sh.)
    # shellcheck disable=SC2016
    setsid ip netns exec "$node" unshare -m sh -c \
      'mount --bind "$1" /run && exec /usr/lib/ipsec/charon' sh "$rundir" \
      </dev/null >"$out/$node.stderr" 2>&1 &
    poll test -S "$rundir/charon.vici" ||
      { echo "charon-ns: $node: no vici socket after ${wait_s} s" >&2; cat "$out/$node.stderr" >&2; exit 1; }
    swanctl --load-all --noprompt --uri "$uri"
    ;;
  stop)
    running || exit 0
    pid=$(cat "$rundir/charon.pid")
    kill "$pid" 2>/dev/null || true
    gone() { ! kill -0 "$pid" 2>/dev/null; }
    poll gone ||
      { echo "charon-ns: $node: charon $pid still running after ${wait_s} s" >&2; exit 1; }
    ;;
  swanctl)
    exec swanctl "$@" --uri "$uri"
    ;;
  *) echo "charon-ns: unknown command $cmd" >&2; exit 2 ;;
esac
