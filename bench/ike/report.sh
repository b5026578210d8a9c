#!/bin/bash
# report.sh OUTDIR - scripts/bench-ike's table from OUTDIR/results.txt (lines
# "WHO KIND key=value ..." written inside UML): agent, charon, and agent/charon.
set -euo pipefail
out=${1:?usage: report.sh OUTDIR}
r=$out/results.txt
[ -s "$r" ] || { echo "bench-ike: no results in $out (see console.txt)" >&2; exit 1; }
# get WHO KIND KEY: the values of KEY on WHO's KIND lines, one per line
get() { awk -v who="$1" -v kind="$2" -v key="$3" '$1 == who && $2 == kind {
  for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == key) print kv[2] } }' "$r"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }
list() { tr '\n' ' ' | sed 's/ $//'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
row() { printf '%-44s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
rtt=$(sed -n 's/^rtt avg_ms=//p' "$r" | head -1)
peers=$(awk '$2 == "burst" { for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "ok" || kv[1] == "failed") n += kv[2] }; print n; exit }' "$r")
echo "IKEv2 benchmark, one UML boot ($out)"
echo "host load average: before $(cut -d' ' -f1-3 "$out/load-before.txt"), after $(cut -d' ' -f1-3 "$out/load-after.txt" 2>/dev/null)"
echo "round trip b<->c in clear: ${rtt:-?} ms"
printf '%-44s %12s %12s %8s\n' "" agent charon agent/charon
for w in agent charon; do
  eval "seq_$w=\$(get $w seq rate)"; eval "bwall_$w=\$(get $w burst wall_s)"
  eval "brate_$w=\$(get $w burst rate)"; eval "bp50_$w=\$(get $w burst p50_ms)"
  eval "bp90_$w=\$(get $w burst p90_ms)"; eval "bfail_$w=\$(get $w burst failed)"
  eval "rss_$w=\$(get $w rss-per-sa bytes)"
  eval "udp_$w=\$(get $w udp first_delivery_ms | median)"
  eval "sa_$w=\$(get $w sa-ready ms | median)"
  eval "tcp_$w=\$(get $w tcp connect_ms | median)"
  eval "drops_$w=\$(awk -v w=$w '\$1 == w && \$2 == \"udp-rcvbuf-drops\" { print \$3 }' \"$r\")"
  eval "sas_$w=\$(awk -v w=$w '\$1 == w && \$2 == \"kernel-sas\" { print \$3 }' \"$r\")"
done
# shellcheck disable=SC2154 # set by eval above
{
  row "handshakes/s, one at a time ($(get agent seq ok | head -1) peers)" "$seq_agent" "$seq_charon"
  row "burst of ${peers:-?} peers: s until the last one" "$bwall_agent" "$bwall_charon"
  row "burst: handshakes/s" "$brate_agent" "$brate_charon"
  row "burst: failed handshakes" "$bfail_agent" "$bfail_charon"
  row "datagrams b dropped (receive buffer full)" "$drops_agent" "$drops_charon"
  row "burst: handshake p50 ms" "$bp50_agent" "$bp50_charon"
  row "burst: handshake p90 ms" "$bp90_agent" "$bp90_charon"
  row "first UDP packet -> delivered, median ms" "$udp_agent" "$udp_charon"
  row "acquire -> outbound SA in b's kernel, median ms" "$sa_agent" "$sa_charon"
  row "TCP connect to a new peer, median ms" "$tcp_agent" "$tcp_charon"
  row "RSS per IKE SA, bytes" "$rss_agent" "$rss_charon"
  row "kernel SAs in b after the burst" "$sas_agent" "$sas_charon"
}
echo "first UDP delivery, each trial (ms): agent $(get agent udp first_delivery_ms | list); charon $(get charon udp first_delivery_ms | list)"
echo "acquire -> outbound SA, each flow (ms): agent $(get agent sa-ready ms | list); charon $(get charon sa-ready ms | list)"
echo "TCP connect, each trial (ms): agent $(get agent tcp connect_ms | list); charon $(get charon tcp connect_ms | list)"
echo "targets: rate >= charon's (ratio >= 1); first packet <= 2 RTT + 10 ms of own time; <= 4096 B per IKE SA"
grep -E '^(agent|charon) [a-z-]*first-failure|run failed' "$r" || true
