"""The HTTP API against a real `fusionrec serve` process on loopback (values, not just status codes)."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.serve.server import ServerHandle, Workspace, start_server


def get(server: ServerHandle, path: str, **params: object) -> httpx.Response:
    return httpx.get(server.url + path, params=params, timeout=30)


def post_events(server: ServerHandle, events: list[dict[str, object]], key: str | None = None, **extra: object) -> httpx.Response:
    headers = {"X-API-Key": server.api_key if key is None else key}
    return httpx.post(server.url + "/events", json={"events": events} | extra, headers=headers, timeout=30)


def ids(response: httpx.Response) -> list[str]:
    return [card["item_id"] for card in response.json()["items"]]


def a_user(server: ServerHandle) -> str:
    users = get(server, "/users", limit=20).json()["users"]
    return next(u["user_id"] for u in users if u["n_history"] > 3)


def test_health_schema_and_metrics(server: ServerHandle) -> None:
    health = get(server, "/healthz").json()
    assert health["status"] == "ok" and health["model"] == "content" and health["n_items"] == 60
    schema = get(server, "/openapi.json").json()
    for path in ("/users/{user_id}/recommendations", "/recommendations", "/items/{item_id}/similar", "/search",
                 "/events", "/items", "/healthz"):
        assert path in schema["paths"], path
    assert get(server, "/docs").status_code == 200
    text = get(server, "/metrics").text
    assert "fusionrec_requests_total" in text and "fusionrec_events_stored" in text and 'fusionrec_index_items{space="fused"}' in text


def test_recommendations_exclude_the_history_and_explain(server: ServerHandle) -> None:
    user = a_user(server)
    history = set(ids(get(server, f"/users/{user}/history", limit=1000)))
    answer = get(server, f"/users/{user}/recommendations", k=8, explain="true").json()
    assert answer["cold"] is False and len(answer["items"]) == 8
    assert not history & {c["item_id"] for c in answer["items"]}
    scores = [c["score"] for c in answer["items"]]
    assert scores == sorted(scores, reverse=True)
    explanation = answer["items"][0]["explanation"]
    assert explanation["driver"] in ("text", "attributes")
    assert set(explanation["contributions"]) == {"text", "attributes"}
    assert sum(explanation["contributions"].values()) == pytest.approx(answer["items"][0]["score"], abs=1e-3)
    assert explanation["evidence"] and explanation["evidence"][0]["item_id"] in history


def test_unknown_users_take_the_cold_path(server: ServerHandle) -> None:
    answer = get(server, "/users/nobody-here/recommendations", k=5).json()
    assert answer["cold"] is True and len(answer["items"]) == 5
    picked = ids(get(server, f"/users/{a_user(server)}/history"))[:2]
    cold = httpx.post(server.url + "/recommendations", json={"items": picked, "k": 6}, timeout=30).json()
    assert cold["cold"] is True and len(cold["items"]) == 6 and not set(picked) & set(ids_of(cold))


def ids_of(payload: dict[str, object]) -> list[str]:
    return [card["item_id"] for card in payload["items"]]  # type: ignore[index, union-attr]


def test_feedback_changes_the_next_recommendations_and_is_idempotent(server: ServerHandle) -> None:
    user = a_user(server)
    before = ids(get(server, f"/users/{user}/recommendations", k=10))
    stored = get(server, "/healthz").json()["events"]
    liked, disliked = before[0], before[1]
    events = [{"user_id": user, "item_id": liked, "type": "like"}, {"user_id": user, "item_id": disliked, "type": "dislike"}]
    first = post_events(server, events, idempotency_key="batch-1")
    assert first.status_code == 200 and first.json() == {"stored": 2, "duplicate": False}
    again = post_events(server, events, idempotency_key="batch-1")
    assert again.json() == {"stored": 2, "duplicate": True}
    assert get(server, "/healthz").json()["events"] == stored + 2
    after = ids(get(server, f"/users/{user}/recommendations", k=10))
    assert liked not in after and disliked not in after and after != before
    assert liked in ids(get(server, f"/users/{user}/history", limit=1000))
    assert ids(get(server, f"/users/{user}/history", limit=1)) == [liked], "the newest item comes last"
    newcomer = post_events(server, [{"user_id": "brand-new", "item_id": liked, "type": "purchase"}])
    assert newcomer.status_code == 200
    assert get(server, "/users/brand-new/recommendations", k=3).json()["cold"] is False


def test_writes_need_the_key_and_bad_events_store_nothing(server: ServerHandle) -> None:
    event = [{"user_id": "u1", "item_id": "1", "type": "click"}]
    assert post_events(server, event, key="wrong").status_code == 401
    assert httpx.post(server.url + "/events", json={"events": event}, timeout=10).status_code == 401
    stored = get(server, "/healthz").json()["events"]
    unknown = post_events(server, [*event, {"user_id": "u1", "item_id": "no-such-item", "type": "click"}])
    assert unknown.status_code == 404 and "event 1" in unknown.json()["detail"]
    assert post_events(server, [{"user_id": "u1", "item_id": "1", "type": "teleport"}]).status_code == 422
    assert post_events(server, [{"user_id": "../etc", "item_id": "1", "type": "click"}]).status_code == 422
    assert get(server, "/healthz").json()["events"] == stored


def test_similar_items_and_search(server: ServerHandle, serve_workspace: Workspace) -> None:
    similar = get(server, "/items/1/similar", k=5, modality="text").json()
    assert len(similar["items"]) == 5 and "1" not in ids_of(similar)
    assert get(server, "/items/1/similar", modality="poster-ish").status_code == 422
    assert get(server, "/items/no-such-item/similar").status_code == 404
    import pandas as pd

    items = pd.read_csv(serve_workspace.media / "items.csv")
    target = items.iloc[7]
    found = get(server, "/search", q=target["description"], k=5).json()
    assert str(target["item_id"]) in ids_of(found)[:3]


def test_a_new_item_is_searchable_and_recommendable_at_once(server: ServerHandle) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (60, 90), (200, 30, 30)).save(buffer, format="PNG")
    description = "A zeppelin pilot races across frozen volcano islands with a clockwork parrot."
    response = httpx.post(
        server.url + "/items", headers=server.headers(), timeout=120,
        data={"item_id": "zeppelin-1", "title": "Zeppelin Parrot", "description": description, "genres": "Adventure"},
        files={"image": ("poster.png", buffer.getvalue(), "image/png")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["item_id"] == "zeppelin-1" and "text" in response.json()["encoded"]
    assert ids_of(get(server, "/search", q="zeppelin pilot clockwork parrot", k=3).json())[0] == "zeppelin-1"
    everything = ids(get(server, f"/users/{a_user(server)}/recommendations", k=200))
    assert "zeppelin-1" in everything
    card = next(c for c in get(server, "/search", q="zeppelin", k=1).json()["items"])
    assert card["poster_url"] and get(server, card["poster_url"]).status_code == 200


def test_bad_uploads_and_paths_are_4xx(server: ServerHandle) -> None:
    not_image = httpx.post(server.url + "/items", headers=server.headers(), timeout=30,
                           data={"title": "x"}, files={"image": ("x.png", b"not an image at all", "image/png")})
    assert not_image.status_code == 422
    huge = httpx.post(server.url + "/events", headers=server.headers() | {"content-type": "application/json"},
                      content=b"[" + b"1," * (5 << 20) + b"1]", timeout=60)
    assert huge.status_code == 413
    for path in ("/media/../../etc/passwd", "/media/%2e%2e/%2e%2e/etc/passwd", "/media/items.csv", "/static/../app.py"):
        assert get(server, path).status_code == 404, path
    assert get(server, "/users/a%20b/recommendations").status_code == 422
    assert get(server, "/users/u1/recommendations", k=0).status_code == 422
    assert get(server, "/users/u1/recommendations", diversity=2).status_code == 422


def test_diversity_reranks_and_keeps_the_top_item(server: ServerHandle) -> None:
    user = a_user(server)
    plain = get(server, f"/users/{user}/recommendations", k=10).json()["items"]
    diverse = get(server, f"/users/{user}/recommendations", k=10, diversity=0.8).json()["items"]
    assert plain[0]["item_id"] == diverse[0]["item_id"]
    assert [c["item_id"] for c in plain] != [c["item_id"] for c in diverse]


def test_a_restart_replays_the_stored_events(serve_workspace: Workspace, tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    with start_server(tmp_path, serve_workspace, db=db) as first:
        user = a_user(first)
        top = ids(get(first, f"/users/{user}/recommendations", k=3))[0]
        added = httpx.post(first.url + "/items", headers=first.headers(), timeout=120,
                           data={"item_id": "kept-1", "title": "Lighthouse Keeper", "description": "A lighthouse keeper and a storm."})
        assert added.status_code == 200, added.text
        events = [{"user_id": user, "item_id": top, "type": "like"}, {"user_id": user, "item_id": "kept-1", "type": "like"}]
        assert post_events(first, events).status_code == 200
    with start_server(tmp_path, serve_workspace, db=db) as second:
        history = ids(get(second, f"/users/{user}/history", limit=1000))
        assert top in history and history[-1] == "kept-1"  # the posted item came back before its event
        assert top not in ids(get(second, f"/users/{user}/recommendations", k=10))
        assert np.isclose(get(second, "/healthz").json()["events"], 2)
        assert ids_of(get(second, "/search", q="lighthouse keeper storm", k=1).json()) == ["kept-1"]
