"""Static checks of the container build and the compose stack (no Docker engine needed)."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _stages(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)", text, flags=re.M | re.I)


def test_dockerfile_is_multi_stage_with_pinned_bases():
    text = _dockerfile()
    stages = _stages(text)
    assert [name for _, name in stages] == ["base", "builder", "runtime"]
    default_base = re.search(r"^ARG BASE_IMAGE=(\S+)", text, flags=re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", default_base)  # pinned, not :latest
    compose = _compose()
    for service in compose["services"].values():
        image_arg = service.get("build", {}).get("args", {}).get("BASE_IMAGE")
        if image_arg:
            assert ":" in image_arg and not image_arg.endswith(":latest")
    assert "nvidia/cuda:" in compose["services"]["api-gpu"]["build"]["args"]["BASE_IMAGE"]


def test_runtime_stage_is_slim_non_root_with_healthcheck_and_model():
    text = _dockerfile()
    runtime = text[text.index("AS runtime"):]
    assert re.search(r"^USER hct$", runtime, flags=re.M)
    assert "HEALTHCHECK" in runtime and "/healthz" in runtime
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime
    assert "models/default" in runtime
    assert 'ENTRYPOINT ["hct", "serve"]' in runtime
    for forbidden in ("gcc", "build-essential", "torch", "pip install"):
        assert forbidden not in runtime, forbidden


def test_builder_installs_runtime_dependencies_only():
    text = _dockerfile()
    builder = "\n".join(line for line in text[text.index("AS builder"):text.index("AS runtime")]
                        .splitlines() if not line.lstrip().startswith("#"))
    assert "pip install --no-cache-dir ." in builder
    assert "[train" not in builder and "[dev" not in builder
    assert "! pip show torch" in builder  # the build fails if torch sneaks in


def test_dockerignore_keeps_data_and_secrets_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "data", "secrets", ".env", "*.h5", "*.db"):
        assert entry in ignored


def test_compose_services_healthchecks_and_dependencies():
    compose = _compose()
    services = compose["services"]
    assert {"api", "db", "prometheus", "worker", "api-gpu"} <= set(services)
    assert services["db"]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "pgdata:/var/lib/postgresql/data" in services["db"]["volumes"]
    assert "pgdata" in compose["volumes"]
    assert services["api"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["worker"]["entrypoint"] == ["hct", "worker"]
    prom = services["prometheus"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    scrape = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    targets = [t for job in scrape["scrape_configs"] for s in job["static_configs"]
               for t in s["targets"]]
    assert "api:8000" in targets


def test_gpu_profile_reserves_an_nvidia_device():
    gpu = _compose()["services"]["api-gpu"]
    assert gpu["profiles"] == ["gpu"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["environment"]["HCT_EXECUTION_PROVIDER"] == "cuda"


def test_no_secrets_committed_in_compose():
    compose = _compose()
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"environment"}, f"secret {name} must come from the environment"
    for service in compose["services"].values():
        env = service.get("environment", {})
        for key, value in env.items():
            assert "PASSWORD" not in key or key.endswith("_FILE"), f"{key} set inline"
            assert key != "HCT_API_KEYS", "API key hashes come from a secret"
            if key == "HCT_DATABASE_URL":
                credentials = value.split("//", 1)[1].split("@", 1)[0]
                assert ":" not in credentials, "password inside HCT_DATABASE_URL"
    assert not list(ROOT.glob("secrets/*")), "a secrets/ folder is committed"


def _nginx() -> str:
    return (ROOT / "deploy/nginx.conf").read_text()


def _directive(text: str, name: str) -> list[str]:
    """Values of an nginx directive outside comments."""
    live = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return [m.strip() for m in re.findall(rf"^\s*{name}\s+([^;{{}}\n]+);", live, flags=re.M)]


def test_compose_puts_nginx_in_front_of_the_api():
    services = _compose()["services"]
    proxy = services["proxy"]
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+-\w+", proxy["image"])  # pinned
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    assert "ports" not in services["api"], "the API is reached through the proxy only"
    assert _directive(_nginx(), "server") == ["api:8000"]


def test_nginx_bounds_heads_bodies_and_upstream_time():
    text = _nginx()
    for name in ("client_header_timeout", "client_body_timeout", "proxy_connect_timeout",
                 "proxy_read_timeout", "proxy_send_timeout", "send_timeout"):
        (value,) = _directive(text, name)
        assert re.fullmatch(r"\d+s", value) and int(value[:-1]) <= 120, (name, value)
    (buffers,) = _directive(text, "large_client_header_buffers")
    number, size = buffers.split()
    assert int(number) * int(size.rstrip("k")) <= 64  # KiB of head per connection at most


def test_nginx_body_limit_matches_the_api_upload_limit():
    from service.settings import Settings

    (limit,) = _directive(_nginx(), "client_max_body_size")
    assert limit.endswith("m")
    configured = _compose()["x-hct-env"]["HCT_MAX_UPLOAD_BYTES"]
    assert int(limit[:-1]) * 1024 * 1024 == int(configured) == Settings(
        _env_file=None).max_upload_bytes


def test_nginx_is_tls_ready_and_hides_metrics():
    text = _nginx()
    assert re.search(r"^\s*#\s*listen 443 ssl;", text, flags=re.M)
    assert re.search(r"^\s*#\s*ssl_certificate\s+/etc/nginx/tls/", text, flags=re.M)
    assert "location = /metrics" in text


def _checkable(text: str, tmp_path: Path, *, tls: bool) -> Path:
    """The config with the upstream on loopback (nginx -t resolves names) and, with `tls`,
    the 443 block uncommented around a throw-away certificate.
    """
    text = text.replace("server api:8000;", "server 127.0.0.1:8000;")
    if tls:
        import subprocess

        tls_dir = tmp_path / "tls"
        tls_dir.mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=hct.test", "-keyout", str(tls_dir / "privkey.pem"),
                        "-out", str(tls_dir / "fullchain.pem")], check=True,
                       capture_output=True)
        block = text[text.index("    # server {\n    #     listen 443"):text.rindex("}")]
        text = text.replace(block, re.sub(r"^(\s*)# ?", r"\1", block, flags=re.M))
        text = text.replace("/etc/nginx/tls/", f"{tls_dir}/")
        assert re.search(r"^\s*listen 443 ssl;", text, flags=re.M)
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    return path


@pytest.mark.parametrize("tls", [False, True])
def test_nginx_accepts_the_config(tmp_path, tls):
    import shutil
    import subprocess

    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if nginx is None or (tls and shutil.which("openssl") is None):
        pytest.skip("nginx (or openssl) is not installed here")
    config = _checkable(_nginx(), tmp_path, tls=tls)
    out = subprocess.run([nginx, "-t", "-c", str(config), "-p", str(tmp_path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "test is successful" in out.stderr


def test_ray_profile_has_a_head_and_workers_on_one_image_with_shared_data():
    compose = _compose()
    head, worker = compose["services"]["ray-head"], compose["services"]["ray-worker"]
    assert head["profiles"] == worker["profiles"] == ["ray"]
    assert head["image"] == worker["image"] == "hct:ray"
    assert head["build"]["dockerfile"] == "deploy/ray.Dockerfile"
    assert head["command"][:3] == ["ray", "start", "--head"] and "--block" in head["command"]
    assert "--address=ray-head:6379" in worker["command"] and "--block" in worker["command"]
    assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert "ray" in head["healthcheck"]["test"] and "status" in head["healthcheck"]["test"]
    assert worker["deploy"]["replicas"] >= 1
    for node in (head, worker):  # one /data path cluster-wide; an object store in /dev/shm
        assert "raydata:/data" in node["volumes"]
        assert node["shm_size"]
        assert node["environment"]["RAY_AUTH_MODE"] == "token"
        assert node["secrets"] == ["ray_token"]
    assert "raydata" in compose["volumes"]
    assert compose["secrets"]["ray_token"] == {"environment": "HCT_RAY_TOKEN"}
    assert "10001:10001" in head["ports"]  # Ray Client, for --address ray://host:10001
    for name in ("api", "worker", "db"):  # the default stack does not start Ray
        assert "profiles" not in compose["services"][name]


def test_ray_image_installs_train_and_ray_extras_and_the_service_image_neither():
    ray_image = (ROOT / "deploy" / "ray.Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11\.\d+-slim-\w+$", ray_image, flags=re.M)
    assert "pip install --no-cache-dir '.[train,ray]'" in ray_image
    assert "import ray.data, ray.train.torch" in ray_image
    service_image = _dockerfile()
    assert "[ray" not in service_image and "ray[" not in service_image
