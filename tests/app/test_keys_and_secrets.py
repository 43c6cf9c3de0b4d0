"""Key rotation and revocation (API and CLI); secret-key rotation for everything encrypted."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select

from app.core import secrets
from app.core.config import Settings
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.pipeline.records import open_engine
from app.sources.models import Source
from app.webhooks.models import WebhookEndpoint

ROOT = Path(__file__).resolve().parents[2]


def test_rotate_a_key_now(client, factory):
    admin = factory.key("admin")
    r = client.post("/api/v1/api-keys", json={"role": "viewer", "name": "tv"}, headers=admin)
    old_id, old_token = r.json()["id"], r.json()["key"]
    old = {"Authorization": f"Bearer {old_token}"}
    assert client.get("/api/v1/reps", headers=old).status_code == 200
    r = client.post(f"/api/v1/api-keys/{old_id}/rotate", headers=admin)
    assert r.status_code == 201, r.text
    new = r.json()
    assert (new["role"], new["name"]) == ("viewer", "tv") and new["key"] != old_token
    assert client.get("/api/v1/reps", headers=old).status_code == 401
    assert (
        client.get("/api/v1/reps", headers={"Authorization": f"Bearer {new['key']}"}).status_code
        == 200
    )
    # A revoked key cannot be rotated; listing never shows a key itself.
    assert client.post(f"/api/v1/api-keys/{old_id}/rotate", headers=admin).status_code == 409
    listed = client.get("/api/v1/api-keys", headers=admin)
    assert new["key"] not in listed.text and old_token not in listed.text


def test_rotate_with_grace_keeps_the_old_key_for_a_while(client, factory):
    admin = factory.key("admin")
    mgr = factory.rep(role="manager")
    r = client.post("/api/v1/api-keys", json={"role": "manager", "rep_id": mgr.id}, headers=admin)
    old_id, old_token = r.json()["id"], r.json()["key"]
    r = client.post(f"/api/v1/api-keys/{old_id}/rotate?grace_hours=2", headers=admin)
    assert r.status_code == 201 and r.json()["rep_id"] == mgr.id
    keys = {k["id"]: k for k in client.get("/api/v1/api-keys", headers=admin).json()["items"]}
    assert keys[old_id]["revoked_at"] is None and keys[old_id]["expires_at"]
    assert (
        client.get("/api/v1/reps", headers={"Authorization": f"Bearer {old_token}"}).status_code
        == 200
    )
    assert client.post("/api/v1/api-keys/999999/rotate", headers=admin).status_code == 404
    too_long = client.post(f"/api/v1/api-keys/{old_id}/rotate?grace_hours=1000", headers=admin)
    assert too_long.status_code == 422 and "grace_hours" in too_long.text


def _cli(url: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QG_DATABASE_URL": url, "QG_SECRET_KEY": key, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_secret_key_rotation_re_encrypts_everything(tmp_path):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    engine = open_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    old = Settings(database_url=url, secret_key=old_key)
    whsec = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    with transaction(factory) as s:
        s.add(
            Source(
                kind="hubspot",
                name="h",
                credentials_encrypted=secrets.encrypt(old, {"access_token": "pat-PLANTED"}),
            )
        )
        s.add(
            WebhookEndpoint(
                url="https://hooks.example.com/x",
                event_types=["*"],
                secret_encrypted=secrets.encrypt(old, {"secret": whsec}),
            )
        )
    done = _cli(url, f"{new_key},{old_key}", "rotate-secrets")
    assert done.returncode == 0, done.stderr
    assert "1 sources and 1 webhook secrets" in done.stdout
    only_new = Settings(database_url=url, secret_key=new_key)
    with factory() as s:
        source = s.scalars(select(Source)).one()
        hook = s.scalars(select(WebhookEndpoint)).one()
        assert secrets.decrypt(only_new, source.credentials_encrypted) == {
            "access_token": "pat-PLANTED"
        }
        assert secrets.decrypt(only_new, hook.secret_encrypted) == {"secret": whsec}
        assert "PLANTED" not in source.credentials_encrypted
    # CLI key management: create, rotate (old revoked), list without the keys.
    created = _cli(url, new_key, "create-api-key", "--role", "analyst", "--name", "ops")
    token = created.stdout.strip().splitlines()[-1]
    rotated = _cli(url, new_key, "rotate-api-key", "1")
    assert rotated.returncode == 0, rotated.stderr
    new_token = rotated.stdout.strip().splitlines()[-1]
    assert new_token.startswith("qg_") and new_token != token
    listed = _cli(url, new_key, "list-api-keys").stdout
    assert "#1" in listed and "revoked" in listed and "#2" in listed and "active" in listed
    assert token not in listed and new_token not in listed
    assert _cli(url, new_key, "revoke-api-key", "2").returncode == 0
    engine.dispose()
