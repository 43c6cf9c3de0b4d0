"""Well-formed input that used to answer 500 answers 4xx with the error shape (issue 17, 7)."""

from __future__ import annotations

import pytest

HUGE = str(2**70)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/performance?period=2026-11&computed_on=9999-12-31",
        "/api/v1/summary?period=2026-11&computed_on=9999-12-31",
        "/api/v1/leaderboard?period=2026-11&computed_on=9999-12-31",
        "/api/v1/reps/{rep}/coaching?period=2026-11&computed_on=9999-12-31",
    ],
)
def test_last_representable_computed_on_is_not_a_500(client, factory, path):
    rep = factory.rep(name="Ana", email="ana@example.com")
    r = client.get(path.format(rep=rep.id), headers=factory.key("admin"))
    # The latest snapshot computed by the end of time: none here, so the documented 404.
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/alerts", "/api/v1/audit"])
def test_naive_since_is_422_naming_it(client, factory, path):
    h = factory.key("admin")
    r = client.get(path, params={"since": "2026-01-01T00:00:00"}, headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == "query.since"
    r = client.get(path, params={"since": "2026-01-01T00:00:00Z"}, headers=h)
    assert r.status_code == 200


@pytest.mark.parametrize("column", ["rep_id", "team_id", "value"])
def test_target_upload_with_an_integer_over_64_bits_is_not_a_500(client, factory, column):
    rep = factory.rep(name="Ana", email="ana@example.com")
    row = {"rep_id": str(rep.id), "metric": "won_revenue", "period": "2026-11", "value": "100"}
    if column == "team_id":
        row = {"team_id": HUGE, **{k: v for k, v in row.items() if k != "rep_id"}}
    row[column] = HUGE
    text = ",".join(row) + "\n" + ",".join(row.values()) + "\n"
    r = client.post(
        "/api/v1/targets/upload",
        files={"file": ("t.csv", text.encode())},
        headers=factory.key("admin"),
    )
    if column == "value":  # a huge quota is a number like any other (a float)
        assert r.status_code == 200, r.text
    else:  # an id no record has
        assert r.status_code == 422 and r.json()["error"]["details"][0]["row"] == 1, r.text


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("GET", f"/api/v1/reps/{HUGE}", None),
        ("GET", f"/api/v1/deals?rep_id={HUGE}", None),
        ("GET", f"/api/v1/alerts?rule_id={HUGE}", None),
        (
            "POST",
            "/api/v1/targets",
            {"rep_id": 2**70, "metric": "won_revenue", "period": "2026-11", "value": 1},
        ),
        ("PATCH", f"/api/v1/reps/{HUGE}", {"name": "x"}),
    ],
)
def test_integers_over_64_bits_anywhere_are_4xx(client, factory, method, path, body):
    r = client.request(method, path, json=body, headers=factory.key("admin"))
    assert 400 <= r.status_code < 500, r.text
    assert "error" in r.json()


@pytest.mark.parametrize(
    "text",
    [
        "rep_id,metric,period,value\r1\x00,won_revenue,2026-11,1\n",
        'rep_id,metric,period,value\n"1,won_revenue,2026-11,1\n\x00"\r"x\n',
    ],
)
def test_target_upload_of_malformed_csv_is_422(client, factory, text):
    # Found by bench/fuzz_api.py: csv.Error ("new-line character seen in unquoted field").
    r = client.post(
        "/api/v1/targets/upload",
        files={"file": ("t.csv", text.encode())},
        headers=factory.key("admin"),
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] in ("file", "rep")


def test_compute_as_of_out_of_range_is_a_422_not_a_failed_job(client, factory):
    h = factory.key("admin")
    for day in ("0001-01-01", "9999-12-31"):
        r = client.post("/api/v1/compute", json={"as_of": day}, headers=h)
        assert r.status_code == 422, r.text
        assert "as_of" in r.text


def test_a_nul_character_is_a_422_naming_where_it_is(client, factory):
    # PostgreSQL cannot store U+0000 in text or jsonb: it was a DataError, a 500 (found by
    # bench/fuzz_api.py on POST /api/v1/teams); SQLite stored it.
    h = factory.key("admin")
    r = client.post("/api/v1/teams", json={"name": "North\u0000"}, headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"] == [
        {"field": "name", "message": "contains a NUL (U+0000) character"}
    ]
    r = client.post(
        "/api/v1/sources",
        json={"kind": "hubspot", "name": "H", "credentials": {"access_token": ["a", "\u0000"]}},
        headers=h,
    )
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["error"]["details"]] == ["credentials.access_token[1]"]
    r = client.get("/api/v1/deals", params={"status": "won\u0000"}, headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == "status"


def test_the_text_backslash_u0000_is_not_a_nul(client, factory):
    r = client.post("/api/v1/teams", json={"name": "North \\u0000"}, headers=factory.key("admin"))
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "North \\u0000"
