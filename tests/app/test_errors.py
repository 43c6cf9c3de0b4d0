from __future__ import annotations


def test_unknown_route_uses_the_error_shape(client, factory):
    r = client.get("/api/v1/nothing-here", headers=factory.key())
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_validation_error_names_the_field(client, factory):
    r = client.get("/api/v1/reps", params={"limit": 0}, headers=factory.key())
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    assert err["details"][0]["field"] == "query.limit"


def test_malformed_json_is_422_not_500(client, factory):
    r = client.post(
        "/api/v1/targets",
        content=b"{not json",
        headers={**factory.key(), "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"


def test_unexpected_errors_hide_the_trace(app, client, factory):
    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    r = client.get("/api/v1/boom")
    assert r.status_code == 500
    assert r.json() == {
        "error": {"code": "internal_error", "message": "internal server error", "details": []}
    }
    assert "secret internals" not in r.text
