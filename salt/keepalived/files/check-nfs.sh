#!/bin/sh
# Managed by Salt (keepalived): track script of the NFS VIP. Healthy while
# the kernel NFS server runs threads (stopping nfs-server sets them to 0).
{ read -r threads < /proc/fs/nfsd/threads; } 2>/dev/null || exit 1
[ "${threads:-0}" -gt 0 ]
