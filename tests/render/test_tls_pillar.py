"""pillar/top.sls gives the signing policies (tls/ca.sls) to the CA host only
and no TLS key to anyone: the pillar of a host compiled as Salt does
(masterless, the secrets root as tools/gen_secrets.py writes it)."""

import multiprocessing

import render as render_tool


def _pillar_in_fresh_process(host, topology, secrets_dir, cache_root):
    import salt.client

    caller = salt.client.Caller(mopts=render_tool.minion_opts(host, topology, "debian12", secrets_dir, cache_root))
    return caller.cmd("pillar.raw")


def pillar_of(host, topology, env):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_pillar_in_fresh_process, (host, topology, *env))


def test_only_the_ca_host_receives_the_policies_and_no_host_a_key(tls_salt_env):
    import gen_tls

    db1, af1 = pillar_of("db1", "compact", tls_salt_env), pillar_of("af1", "compact", tls_salt_env)
    for pillar in (db1, af1):
        tls = pillar["tls"]
        assert tls["enabled"] is True and "BEGIN CERTIFICATE" in tls["ca_cert"] and set(tls) == {"enabled", "ca_cert"}
        assert "BEGIN PRIVATE KEY" not in str(pillar) and "EC PRIVATE KEY" not in str(pillar)  # (SSH keys are OPENSSH)
    assert "ca" in db1["inventory"]["hosts"]["db1"]["roles"]
    policies = db1["x509_signing_policies"]
    assert {f"airflow_ha_{h}" for h in db1["inventory"]["hosts"]} <= set(policies)  # (every topology's hosts)
    assert policies["airflow_ha_af1"]["minions"] == "af1"
    assert policies["airflow_ha_af1"]["signing_private_key"].endswith("/ca.key")
    assert "x509_signing_policies" not in af1
    assert gen_tls.signing_policy_name("af1") == "airflow_ha_af1"
