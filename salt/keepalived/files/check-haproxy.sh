#!/bin/sh
# Managed by Salt (keepalived): track script of the main VIP. Healthy while
# an haproxy process runs. A script file, not `pidof haproxy` directly:
# keepalived's script security resolves pidof's symlink to killall5, which
# then refuses the arguments.
exec pidof haproxy >/dev/null
