#!/bin/bash
# topo.sh up|down - two network namespaces joined by a veth; run as root inside UML.
#   netns a: va 10.77.0.1/24 (examples/lab_peer)    netns b: vb 10.77.0.2/24 (charon)
set -eu
case ${1:-up} in
  up)
    ip netns add a; ip netns add b
    ip link add va netns a type veth peer name vb netns b
    ip -n a addr add 10.77.0.1/24 dev va
    ip -n b addr add 10.77.0.2/24 dev vb
    ip -n a link set lo up; ip -n a link set va up
    ip -n b link set lo up; ip -n b link set vb up ;;
  down) ip netns del a 2>/dev/null || true; ip netns del b 2>/dev/null || true ;;
esac
