# Site settings that are not inventory: each key overrides the defaults.yaml
# of the state area of the same name (salt/<area>/defaults.yaml).
# Examples:
# base:
#   timezone: Europe/Berlin
#   admin_user:
#     name: ops
#     ssh_authorized_keys:
#       - ssh-ed25519 AAAA... ops@bastion
#   firewall:
#     admin_networks: [10.20.0.0/16]
{}
