"""The OpenAPI schema documents every endpoint: description, tag, auth, and request examples
that are themselves valid requests."""

from __future__ import annotations

from pydantic import BaseModel

from app.alerts.schemas import AlertRuleUpdate
from app.auth.schemas import ApiKeyCreate
from app.performance.schemas import ComputeRequest
from app.reps.schemas import RepUpdate
from app.sources.schemas import SourceUpdate
from app.targets.schemas import BulkTargets, TargetUpdate
from app.teams.schemas import TeamCreate, TeamUpdate
from app.webhooks.schemas import WebhookUpdate


def test_every_operation_is_described_tagged_and_secured(app):
    schema = app.openapi()
    declared = {t["name"] for t in schema["tags"]}
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "Authorization: Bearer" in schema["info"]["description"]
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert op.get("description"), f"{where} has no description"
            assert op.get("tags") and set(op["tags"]) <= declared, f"{where}: undeclared tag"
            if not path.startswith("/health"):
                assert op.get("security"), f"{where} does not say it needs a key"


def test_every_json_body_has_an_example(app):
    schema = app.openapi()
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            model = components[body["schema"]["$ref"].rsplit("/", 1)[-1]]
            examples = model.get("examples") or [
                p["examples"] for p in model.get("properties", {}).values() if "examples" in p
            ]
            assert examples, f"{method.upper()} {path}: no example"


def test_examples_are_valid_requests():
    models: list[type[BaseModel]] = [
        AlertRuleUpdate,
        ApiKeyCreate,
        BulkTargets,
        ComputeRequest,
        RepUpdate,
        SourceUpdate,
        TargetUpdate,
        TeamCreate,
        TeamUpdate,
        WebhookUpdate,
    ]
    for model in models:
        examples = model.model_json_schema()["examples"]
        for example in examples:
            model.model_validate(example)  # raises if the documentation lies
        # The examples did not loosen validation: unknown fields are still refused.
        assert model.model_config.get("extra") == "forbid", model.__name__
