"""pillar/top.sls gives each minion its own TLS key and certificate and no
other host's: the pillar of a host compiled as Salt does (masterless, the
secrets root holding tls/<host>.sls for every host)."""

import multiprocessing

import render as render_tool


def _pillar_in_fresh_process(host, topology, secrets_dir, cache_root):
    import salt.client

    caller = salt.client.Caller(mopts=render_tool.minion_opts(host, topology, "debian12", secrets_dir, cache_root))
    return caller.cmd("pillar.raw")


def pillar_of(host, topology, env):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_pillar_in_fresh_process, (host, topology, *env))


def test_each_host_receives_only_its_own_key(tls_salt_env):
    import yaml
    from cryptography import x509

    import gen_tls

    db1, af1 = pillar_of("db1", "compact", tls_salt_env), pillar_of("af1", "compact", tls_salt_env)
    for name, pillar in (("db1", db1), ("af1", af1)):
        tls = pillar["tls"]
        assert tls["enabled"] is True and "BEGIN CERTIFICATE" in tls["ca_cert"]
        own = yaml.safe_load(open(gen_tls.host_pillar_path(tls_salt_env[0], name)))["tls"]
        assert tls["key"] == own["key"] and tls["cert"] == own["cert"]
        dns, _ = gen_tls.cert_names(x509.load_pem_x509_certificate(tls["cert"].encode()))
        assert name in dns
    assert db1["tls"]["key"] != af1["tls"]["key"]
