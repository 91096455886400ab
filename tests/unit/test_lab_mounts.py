"""What each lab machine gets from the lab host (Vagrantfile, evaluated by Ruby with a recording stub
of Vagrant's configuration API): the repository, and with it .secrets/ and every Salt key, on the master
only; every other machine its own Salt key pair and the master's public key, nothing else of the repo."""

import shutil
import subprocess

import pytest

from tests.helpers.inventory import REPO, load_inventory

STUB = r"""
class Rec
  def initialize(path = []); @path = path; end
  def method_missing(name, *args, &blk)
    if blk
      if name == :define || name == :provider
        if blk.arity == 2
          blk.call(Rec.new(@path + [args.first.to_s]), Rec.new(@path + [args.first.to_s]))
        else
          blk.call(Rec.new(@path + [args.first.to_s]))
        end
      end
      return self
    end
    if [:customize, :provision, :synced_folder].include?(name)
      puts JSON.generate({"path" => @path, "call" => name.to_s, "args" => args})
    end
    Rec.new(@path)
  end
  def respond_to_missing?(*) = true
end
module Vagrant
  def self.configure(_version); yield Rec.new; end
end
require "json"
load ARGV[0]
"""


@pytest.fixture(scope="module")
def calls(tmp_path_factory):
    import json

    ruby = shutil.which("ruby")
    if not ruby:
        pytest.skip("ruby is not installed (requirements/apt-test.txt; Vagrant brings it)")
    tmp = tmp_path_factory.mktemp("vagrant")
    shutil.copy(REPO / "Vagrantfile", tmp / "Vagrantfile")
    (tmp / "pillar" / "inventory").mkdir(parents=True)
    shutil.copy(REPO / "pillar" / "inventory" / "compact.yaml", tmp / "pillar" / "inventory" / "compact.yaml")
    (tmp / "requirements").mkdir()
    shutil.copy(REPO / "requirements" / "salt.txt", tmp / "requirements" / "salt.txt")
    # the inventory's loader, which the Vagrantfile runs (here with the system's python3: no venv in tmp)
    for path in ("tools/lab/inventory.py", "_modules/ha_inventory.py"):
        (tmp / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / path, tmp / path)
    (tmp / "stub.rb").write_text(STUB)
    proc = subprocess.run([ruby, str(tmp / "stub.rb"), str(tmp / "Vagrantfile")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "AIRFLOW_HA_TOPOLOGY": "compact"}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return tmp, [json.loads(line) for line in proc.stdout.splitlines()]


def lxc_mounts(calls, host):
    tmp, recorded = calls
    return {c["args"][1].split()[0]: c["args"][1].split()[1] for c in recorded
            if c["call"] == "customize" and c["args"][0] == "mount.entry" and host in c["path"]}


def test_only_the_master_gets_the_repository(calls):
    tmp, _ = calls
    hosts = list(load_inventory("compact")["hosts"])
    master, minions = hosts[0], hosts[1:]
    assert lxc_mounts(calls, master)[str(tmp)] == "srv/airflow-ha"
    for host in minions:
        mounts = lxc_mounts(calls, host)
        from_repo = {src: dst for src, dst in mounts.items() if src == str(tmp) or src.startswith(str(tmp) + "/")}
        # its own key pair and the master's public key, one file each; of the repo's directories only the
        # venv Salt runs from (make lab's default, AIRFLOW_HA_LAB_VENV), which holds no secret
        assert from_repo.pop(f"{tmp}/.venv") == "opt/airflow-ha-lab/venv"
        assert from_repo == {f"{tmp}/.lab/pki/{host}.pem": "srv/airflow-ha-lab/pki/minion.pem",
                             f"{tmp}/.lab/pki/{host}.pub": "srv/airflow-ha-lab/pki/minion.pub",
                             f"{tmp}/.lab/pki/master.pub": "srv/airflow-ha-lab/pki/master.pub"}, host
        assert not any(".secrets" in src or src.endswith("master.pem") for src in mounts), host


def test_vms_sync_the_repository_to_the_master_only_and_upload_the_keys(calls):
    tmp, recorded = calls
    hosts = list(load_inventory("compact")["hosts"])
    synced = {c["path"][0]: c["args"][2].get("disabled") for c in recorded
              if c["call"] == "synced_folder" and c["args"][1] == "/srv/airflow-ha" and "libvirt" in c["path"]}
    assert synced == {h: h != hosts[0] for h in hosts}
    uploads = [c["args"][1] for c in recorded if c["call"] == "provision" and c["args"][1].get("type") == "file"
               and hosts[1] in c["path"] and "libvirt" in c["path"]]
    assert sorted(u["source"] for u in uploads) == sorted([f"{tmp}/.lab/pki/{hosts[1]}.pem",
                                                           f"{tmp}/.lab/pki/{hosts[1]}.pub",
                                                           f"{tmp}/.lab/pki/master.pub"])
    shells = [c["args"][1]["args"] for c in recorded if c["call"] == "provision" and c["args"][1].get("type") == "shell"]
    assert all(a[5].startswith("salt==") for a in shells)  # the VMs' Salt version (a minion has no repo to read)
