"""The Agent Protocol over raw HTTP, for what the PyPI client does not cover: auth, another user's ids, the spec's
pagination, hostile upload paths, and bad input."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from chat.actions.sessions import do_create_session
from chat.workspaces import workspace_path
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

BASE = "/ap/v1/agent"


def client_of(user=None) -> Client:
    user = user or make_user()
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")


def new_task(client, text="do something") -> str:
    made = client.post(f"{BASE}/tasks", {"input": text}, content_type="application/json")
    assert made.status_code == 200, made.json()
    assert made.json() | {"created_at": None} == {"task_id": made.json()["task_id"], "input": text,
                                                  "additional_input": {}, "artifacts": [], "created_at": None}
    return made.json()["task_id"]


@pytest.mark.parametrize("headers", [{}, {"HTTP_AUTHORIZATION": "Token nope"}, {"HTTP_AUTHORIZATION": "Bearer x"}])
def test_without_a_token_it_is_401(headers):
    for method, path in [("get", "/tasks"), ("post", "/tasks"), ("get", "/tasks/x/steps")]:
        response = getattr(Client(**headers), method)(BASE + path)
        assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
        assert response["WWW-Authenticate"] == "Token"


def test_a_logged_in_browser_session_is_not_enough(client):
    user = make_user()
    client.force_login(user)
    assert client.get(f"{BASE}/tasks").status_code == 401


def test_ids_of_another_user_are_404_and_lists_are_their_own():
    mine, theirs = client_of(), client_of()
    task_id = new_task(mine)
    upload = mine.post(f"{BASE}/tasks/{task_id}/artifacts", {"file": SimpleUploadedFile("a.txt", b"mine")})
    artifact_id = upload.json()["artifact_id"]
    for path in [f"/tasks/{task_id}", f"/tasks/{task_id}/steps", f"/tasks/{task_id}/artifacts",
                 f"/tasks/{task_id}/artifacts/{artifact_id}", f"/tasks/{task_id}/steps/{task_id}"]:
        response = theirs.get(BASE + path)
        assert response.status_code == 404 and response.json()["code"] == "not_found", path
    assert theirs.post(f"{BASE}/tasks/{task_id}/steps", {"input": "hi"}, content_type="application/json"
                       ).status_code == 404
    assert theirs.post(f"{BASE}/tasks/{task_id}/artifacts", {"file": SimpleUploadedFile("b.txt", b"x")}
                       ).status_code == 404
    assert theirs.get(f"{BASE}/tasks").json()["tasks"] == []
    assert mine.get(f"{BASE}/tasks/{task_id}/artifacts/{artifact_id}").getvalue() == b"mine"
    assert mine.get(f"{BASE}/tasks/not-a-uuid").status_code == 404
    assert mine.get(f"{BASE}/tasks/{task_id}/artifacts/nope").status_code == 404


def test_tasks_are_only_the_sessions_made_through_the_protocol_and_paginate_as_the_spec_says():
    user = make_user()
    api = client_of(user)
    do_create_session(owner=user, title="a chat of the web page")
    made = [new_task(api, f"task {n}") for n in range(5)]
    first = api.get(f"{BASE}/tasks", {"page_size": 2}).json()
    assert first["pagination"] == {"total_items": 5, "total_pages": 3, "current_page": 1, "page_size": 2}
    assert [task["task_id"] for task in first["tasks"]] == made[::-1][:2]  # newest first
    last = api.get(f"{BASE}/tasks", {"page_size": 2, "current_page": 3}).json()
    assert [task["task_id"] for task in last["tasks"]] == [made[0]]
    beyond = api.get(f"{BASE}/tasks", {"page_size": 2, "current_page": 9}).json()
    assert beyond["tasks"] == [] and beyond["pagination"]["current_page"] == 9
    assert api.get(f"{BASE}/tasks").json()["pagination"]["page_size"] == 10
    for bad in ({"page_size": 0}, {"current_page": "x"}, {"current_page": -1}):
        response = api.get(f"{BASE}/tasks", bad)
        assert response.status_code == 400 and response.json()["code"] == "bad_input"
    empty_steps = api.get(f"{BASE}/tasks/{made[0]}/steps").json()
    assert empty_steps == {"steps": [], "pagination": {"total_items": 0, "total_pages": 0, "current_page": 1,
                                                       "page_size": 10}}


@pytest.mark.parametrize("relative_path", ["../escape", "../../etc", "/etc", "~", "a/../../b", "inputs/../../x"])
def test_uploads_with_hostile_paths_are_refused(relative_path):
    api = client_of()
    task_id = new_task(api)
    response = api.post(f"{BASE}/tasks/{task_id}/artifacts",
                        {"file": SimpleUploadedFile("evil.txt", b"x"), "relative_path": relative_path})
    assert response.status_code == 400 and response.json()["code"] == "bad_path", response.json()
    root = workspace_path(task_id)
    assert not (root.parent / "escape").exists() and not (root.parent / "evil.txt").exists()
    assert api.get(f"{BASE}/tasks/{task_id}/artifacts").json()["artifacts"] == []


def test_an_upload_through_a_link_out_of_the_workspace_is_refused(tmp_path):
    api = client_of()
    task_id = new_task(api)
    root = workspace_path(task_id)
    root.mkdir(parents=True, exist_ok=True)
    (root / "out").symlink_to(tmp_path)
    response = api.post(f"{BASE}/tasks/{task_id}/artifacts",
                        {"file": SimpleUploadedFile("evil.txt", b"x"), "relative_path": "out"})
    assert response.status_code == 400 and response.json()["code"] == "bad_path"
    assert list(tmp_path.iterdir()) == []


def test_a_file_name_with_folders_keeps_only_its_name():
    api = client_of()
    task_id = new_task(api)
    response = api.post(f"{BASE}/tasks/{task_id}/artifacts", {"file": SimpleUploadedFile("../../evil.txt", b"x")})
    assert response.status_code == 200 and response.json()["file_name"] == "evil.txt"
    assert response.json()["relative_path"] == "" and (workspace_path(task_id) / "evil.txt").is_file()


@pytest.mark.parametrize(("body", "code"), [('{"input": 5}', "bad_input"), ("[1]", "bad_input"),
                                            ("{not json", "bad_input"), ('{"additional_input": 3}', "bad_input")])
def test_bad_bodies_are_400(body, code):
    api = client_of()
    response = api.post(f"{BASE}/tasks", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == code


def test_a_step_needs_an_input_when_the_task_has_none():
    api = client_of()
    made = api.post(f"{BASE}/tasks", {}, content_type="application/json").json()
    assert made["input"] is None
    response = api.post(f"{BASE}/tasks/{made['task_id']}/steps", {}, content_type="application/json")
    assert response.status_code == 400 and "input" in response.json()["message"]
    assert api.post(f"{BASE}/tasks/{made['task_id']}/artifacts", {}).json()["code"] == "bad_input"
    assert api.delete(f"{BASE}/tasks").status_code == 405
