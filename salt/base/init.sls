# The base role: every host of the inventory.
include:
  - base.hosts
  - base.grains
  - base.timezone
  - base.packages
  - base.users
  - base.timesync
  - base.journald
  - base.firewall
  - base.selinux
