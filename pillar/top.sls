# Every host gets the whole inventory (so each can derive peers, VIPs and
# firewall sources), the port map, and the secrets file. The secrets file lives
# outside the repo in a root-only pillar root (see README "Secrets"); when it
# is missing the state tree fails at render time naming each missing key.
base:
  '*':
    - ignore_missing: True
    - inventory
    - ports
    - site
    - airflow_ha_secrets
    # the local rehearsal's own settings (make lab writes .lab/pillar/lab.sls)
    - lab
