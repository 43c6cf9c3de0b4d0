"""The OpenAPI schema documents the one error shape, and fuzzed requests found by
tests/test_schemathesis.py answer documented errors instead of 500s."""

from __future__ import annotations


def test_schema_documents_the_error_shape(client):
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    error = {"$ref": "#/components/schemas/Error"}
    op = schema["paths"]["/api/v1/targets"]["post"]["responses"]
    for code in ("400", "401", "403", "404", "409", "422"):
        assert op[code]["content"]["application/json"]["schema"] == error, code
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]


def test_a_body_that_is_not_text_is_a_documented_400(client, factory):
    r = client.post(
        "/api/v1/teams",
        content=b"K\xff\xfe~",
        headers={**factory.key(), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_request"


def test_an_id_beyond_64_bits_is_not_a_server_error(client, factory):
    r = client.delete("/api/v1/targets/907573256843431641088", headers=factory.key())
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_input"


def test_api_key_with_an_expiry_is_created(client, factory):
    r = client.post(
        "/api/v1/api-keys",
        json={"role": "viewer", "name": "wall TV", "expires_at": "2027-06-30T00:00:00Z"},
        headers=factory.key(),
    )
    assert r.status_code == 201, r.text
    assert r.json()["expires_at"] == "2027-06-30T00:00:00Z"


def test_api_key_for_an_unknown_rep_is_404(client, factory):
    r = client.post(
        "/api/v1/api-keys", json={"role": "viewer", "rep_id": 987654}, headers=factory.key()
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
