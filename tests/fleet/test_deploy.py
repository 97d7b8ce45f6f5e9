"""What ships for running fleets elsewhere passes its validators: Kubernetes manifests, systemd units."""

import os
import shutil
import subprocess

import pytest

from .conftest import ROOT


def test_the_manifests_and_units_pass_the_ci_script():
    pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (the CI script does)")
    r = subprocess.run([str(ROOT / ".ci" / "validate-manifests")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].endswith("passed, 0 failed")


def test_the_validator_refuses_a_field_kubernetes_does_not_know(tmp_path):
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    import yaml

    doc = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "service.yaml").read_text())
    doc["spec"]["clusterIPs_typo"] = ["None"]
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, "1.31.0", strict=True)


def test_the_shard_template_unit_verifies_as_an_instance(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing")
    for unit, name in (("lfafs-fleet-shard@.service", "lfafs-fleet-shard@2.service"),
                       ("lfafs-fleet.service", "lfafs-fleet.service")):
        shutil.copy(ROOT / "systemd" / unit, tmp_path / name)
        r = subprocess.run(["systemd-analyze", "verify", name], cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_the_pods_run_the_same_shard_count_as_the_replicas():
    text = (ROOT / "deploy" / "kubernetes" / "statefulset.yaml").read_text()
    assert '"--shards", "4"' in text and "replicas: 4" in text
    job = (ROOT / "deploy" / "kubernetes" / "indexed-job.yaml").read_text()
    assert '"--shards", "4"' in job and "completions: 4" in job and "parallelism: 4" in job
    assert os.access(ROOT / ".ci" / "validate-manifests", os.X_OK)
