"""docker/ as shipped: secrets required from the environment, one migration run, healthchecks."""

from pathlib import Path

import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def test_compose_requires_secrets_migrates_once_and_checks_health():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    services = compose["services"]
    env = services["web"]["environment"]
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")  # no placeholder that production mode would accept
    assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert services["migrate"]["command"] == ["migrate"] and services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert "/api/health/" in " ".join(services["web"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])
    web_role = (DOCKER / "entrypoint.sh").read_text().split("web)")[1].split(";;")[0]
    assert "migrate" not in web_role
