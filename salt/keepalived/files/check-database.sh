#!/bin/bash
# Managed by Salt (keepalived): track script of the main VIP. Healthy while
# this host reaches the database tier: one Patroni member's REST API answers
# /liveness (any role: a cluster between two leaders still counts, so a
# failover keeps the VIP where it is); a host cut off from every member lets
# it go.  Usage: keepalived-check-database [--cacert CA] URL...
cacert=()
if [ "${1:-}" = --cacert ]; then
  cacert=(--cacert "$2")
  shift 2
fi
for url in "$@"; do
  if curl -fsS -o /dev/null --max-time 1 "${cacert[@]}" "$url" 2>/dev/null; then
    exit 0
  fi
done
exit 1
