"""deploy/, checked offline: the compose file against the Compose Specification's JSON
schema, Kubernetes' objects against Kubernetes' schemas, RayCluster / RayJob against the
CRDs of a pinned KubeRay release (tests/schemas/), the MLflow auth config run for real, and
deploy/README.md's commands against the files they name. No Docker daemon or Kubernetes
cluster is needed (or exists here)."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from servers import free_port, wait_for_port

from nas.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
KUBERNETES_VERSION = "1.32.0"
COMPOSE = DEPLOY / "docker-compose.yml"
MANIFESTS = sorted((DEPLOY / "kuberay").glob("*.yaml"))
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _objects() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in _docs(path)]


def _readme_commands() -> list[list[str]]:
    """Every command line of deploy/README.md's bash blocks, split like a shell would."""
    text = (DEPLOY / "README.md").read_text()
    lines: list[list[str]] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(shlex.split(line))
    return lines


def _strict(schema: Any) -> Any:
    """An OpenAPI schema of a CRD that, like ``kubectl --validate=strict``, refuses fields
    it does not declare (structural schemas prune them silently otherwise)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _crd_schema(kind: str) -> dict[str, Any]:
    plural = {"RayCluster": "rayclusters", "RayJob": "rayjobs"}[kind]
    path = SCHEMAS / "kuberay-v1.7.0" / f"ray.io_{plural}.yaml.gz"
    crd = yaml.safe_load(gzip.decompress(path.read_bytes()))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object"}  # Kubernetes' ObjectMeta
    return _strict(schema)


# -- schemas ---------------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification():
    schema = json.loads((SCHEMAS / "compose-spec" / "compose-spec.json").read_text())
    compose = yaml.safe_load(COMPOSE.read_text())
    jsonschema.Draft7Validator(schema).validate(compose)
    assert {"postgres", "mlflow", "ray-head", "ray-worker"} <= set(compose["services"])


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_objects_follow_their_schemas(path):
    for doc in _docs(path):
        if doc["apiVersion"].startswith("ray.io/"):
            jsonschema.Draft7Validator(_crd_schema(doc["kind"])).validate(doc)
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_strict_crd_check_catches_a_misspelt_field():
    (cluster,) = [d for d in _objects() if d["kind"] == "RayCluster"]
    bad = copy.deepcopy(cluster)
    bad["spec"]["workerGroupSpecs"][0]["maxReplica"] = 3
    with pytest.raises(jsonschema.ValidationError, match="maxReplica"):
        jsonschema.Draft7Validator(_crd_schema("RayCluster")).validate(bad)


def test_kuberay_cluster_has_a_cpu_head_and_autoscaling_cpu_and_gpu_groups():
    (cluster,) = [d for d in _objects() if d["kind"] == "RayCluster"]
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in json.dumps(head)
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["nvidia.com/gpu"] == "1"
    for g in groups.values():
        assert g["minReplicas"] < g["maxReplicas"]
    (job,) = [d for d in _objects() if d["kind"] == "RayJob"]
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]


# -- the README's commands are the files' ---------------------------------------------------


def _nas_argv(argv: list[str]) -> list[str] | None:
    """The ``nas ...`` part of a command (also inside ``docker compose exec SERVICE``)."""
    return argv[argv.index("nas") + 1 :] if "nas" in argv else None


def test_every_nas_command_of_the_readme_and_the_rayjob_parses():
    parser = build_parser()
    commands = [_nas_argv(c) for c in _readme_commands()]
    (job,) = [d for d in _objects() if d["kind"] == "RayJob"]
    commands.append(_nas_argv(shlex.split(job["spec"]["entrypoint"])))
    commands = [c for c in commands if c]
    assert any(c[0] == "search" for c in commands)
    for argv in commands:
        parser.parse_args(argv)  # exits 2 on an option the CLI does not have


def test_readme_compose_commands_name_the_compose_file_and_its_services():
    compose = yaml.safe_load(COMPOSE.read_text())
    used = [c for c in _readme_commands() if c[:2] == ["docker", "compose"]]
    assert any("up" in c for c in used) and any("exec" in c for c in used)
    for argv in used:
        assert (REPO / argv[argv.index("-f") + 1]).resolve() == COMPOSE
        if "exec" in argv:
            assert argv[argv.index("exec") + 1] in compose["services"]
        for scale in (a for a in argv if "=" in a and argv[argv.index(a) - 1] == "--scale"):
            assert scale.split("=")[0] in compose["services"]


def test_readme_env_file_gives_every_variable_compose_requires():
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    (printf,) = [c for c in _readme_commands() if c[0] == "printf"]
    given = set(re.findall(r"(?:^|\\n)(\w+)=%s", printf[1]))
    assert required and required == given
    assert printf[-1] == "deploy/.env" and "/deploy/.env" in (REPO / ".gitignore").read_text()


def test_ray_addresses_agree_in_compose():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    port = re.search(r"--port=(\d+)", " ".join(services["ray-head"]["command"])).group(1)
    assert services["ray-head"]["environment"]["RAY_ADDRESS"] == f"ray-head:{port}"
    assert f"--address=ray-head:{port}" in services["ray-worker"]["command"]


def test_readme_creates_every_secret_and_configmap_the_manifests_use():
    created: dict[str, set[str]] = {}
    config_maps: dict[str, Path] = {}
    for argv in _readme_commands():
        if argv[:4] == ["kubectl", "create", "secret", "generic"]:
            keys = {a.split("=", 2)[1] for a in argv if a.startswith("--from-literal=")}
            created[argv[4]] = keys
        if argv[:3] == ["kubectl", "create", "configmap"]:
            (source,) = [a.split("=", 1)[1] for a in argv if a.startswith("--from-file=")]
            config_maps[argv[3]] = REPO / source
    text = json.dumps(_objects())
    refs = re.findall(r'"secretKeyRef": \{"name": "([\w-]+)", "key": "([\w-]+)"\}', text)
    assert refs
    for name, key in refs:
        assert key in created.get(name, set()), (name, key)
    (cluster,) = [d for d in _objects() if d["kind"] == "RayCluster"]
    assert "auth_token" in created[cluster["spec"]["authOptions"]["secretName"]]
    for name in re.findall(r'"configMap": \{"name": "([\w-]+)"\}', text):
        assert config_maps[name].is_file(), name
    applied = {REPO / a for c in _readme_commands() if c[:2] == ["kubectl", "apply"] for a in c}
    assert set(MANIFESTS) <= applied


def test_every_deploy_path_the_readme_names_exists():
    for argv in _readme_commands():
        for arg in argv:
            for path in re.findall(r"(deploy/[\w./-]+)", arg):
                if path != "deploy/.env":
                    assert (REPO / path).exists(), path


# -- no secret in a committed file, the image's roles ---------------------------------------


def _env_entries() -> list[tuple[str, Any]]:
    entries: list[tuple[str, Any]] = []
    for service in yaml.safe_load(COMPOSE.read_text())["services"].values():
        entries += list((service.get("environment") or {}).items())
    for match in re.finditer(r'"env": (\[.*?\])', json.dumps(_objects())):
        entries += [(e["name"], e) for e in json.loads(match.group(1))]
    return entries


def test_no_secret_value_is_committed():
    for name, value in _env_entries():
        if not SECRET_NAME.search(name) or name == "RAY_AUTH_MODE":
            continue
        if isinstance(value, dict):
            assert "secretKeyRef" in value.get("valueFrom", {}), name
        else:
            assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", str(value)), (name, value)
    ini = (DEPLOY / "mlflow" / "basic_auth.ini").read_text()
    assert not re.search(r"^\s*admin_password\s*=", ini, flags=re.M)
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert not re.search(r"^(ENV|ARG)\s.*(PASSWORD|SECRET|TOKEN)", dockerfile, flags=re.M | re.I)


def test_one_non_root_image_runs_every_role_with_the_projects_commands():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim$", dockerfile, flags=re.M)
    assert re.search(r"^USER nas$", dockerfile, flags=re.M)
    assert re.search(r"^CMD \[\"nas\"", dockerfile, flags=re.M)
    images = {d["image"] for d in yaml.safe_load(COMPOSE.read_text())["services"].values()}
    images |= set(re.findall(r'"image": "([^"]+)"', json.dumps(_objects())))
    ours = {i for i in images if i.startswith("nas-catalog:")}
    built = {c[c.index("-t") + 1] for c in _readme_commands() if c[:2] == ["docker", "build"]}
    assert ours and ours <= built
    for service in yaml.safe_load(COMPOSE.read_text())["services"].values():
        if service["image"] in ours:
            assert service["command"][0] in ("ray", "mlflow", "nas")


# -- the MLflow auth config, for real --------------------------------------------------------


@pytest.mark.slow
def test_mlflow_auth_config_refuses_without_a_password_and_guards_the_api(tmp_path):
    ini = (DEPLOY / "mlflow" / "basic_auth.ini").read_text()
    db = f"sqlite:///{tmp_path / 'basic_auth.db'}"
    (tmp_path / "basic_auth.ini").write_text(ini.replace("sqlite:////mlflow/basic_auth.db", db))
    port = free_port()
    argv = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
            "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    env = dict(os.environ, MLFLOW_AUTH_CONFIG_PATH=str(tmp_path / "basic_auth.ini"))
    env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = os.urandom(16).hex()
    env.pop("MLFLOW_AUTH_ADMIN_PASSWORD", None)
    refused = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "MLFLOW_AUTH_ADMIN_PASSWORD" in refused.stderr

    password = os.urandom(12).hex()
    env["MLFLOW_AUTH_ADMIN_PASSWORD"] = password
    server = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for_port("127.0.0.1", port, 120, "mlflow server")
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(url, timeout=30)
        assert anonymous.value.code == 401
        request = urllib.request.Request(url)
        token = base64.b64encode(f"admin:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as ok:
            assert ok.status == 200
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
