{%- from 'base/map.jinja' import base with context %}
{%- set fw = base.firewall %}
{%- if fw.enabled %}
{%- if fw.backend == 'nftables' %}
# Only the flows of the port map (pillar `ports`) for this host's roles, only
# from the hosts whose roles need them; everything else inbound is dropped.
base-firewall-nftables-config:
  file.managed:
    - name: {{ fw.config }}
    - source: salt://base/files/nftables.conf.jinja
    - template: jinja
    - mode: '0640'
    - context:
        rules: {{ fw.rules | json }}
    - check_cmd: /usr/sbin/nft -c -f
    - require:
      - pkg: base-common-packages

base-firewall-nftables-service:
  service.running:
    - name: {{ fw.service }}
    - enable: True
    - reload: True
    - watch:
      - file: base-firewall-nftables-config
{%- elif fw.backend == 'firewalld' %}
base-firewall-firewalld-service:
  service.running:
    - name: {{ fw.service }}
    - enable: True
    - require:
      - pkg: base-common-packages

base-firewall-firewalld-zone:
  firewalld.present:
    - name: {{ fw.zone }}
    - default: True
    - masquerade: False
    - prune_services: True
    - prune_ports: True
    - services: []
    - ports: []
    - rich_rules:
{%- for rule in fw.rules %}
{%- for source in rule.sources %}
{%- if rule.proto == 'vrrp' %}
      - rule family="ipv4" source address="{{ source }}" protocol value="vrrp" accept
{%- else %}
      - rule family="ipv4" source address="{{ source }}" port port="{{ rule.port }}" protocol="{{ rule.proto }}" accept
{%- endif %}
{%- endfor %}
{%- endfor %}
    - require:
      - service: base-firewall-firewalld-service
{%- endif %}
{%- endif %}
