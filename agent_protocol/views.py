"""The Agent Protocol's endpoints (PROTOCOL §10): plain async views, because a step answers when its turn ends.

Auth is `Authorization: Token <key>` (DRF's tokens) and nothing else; a user sees only their own tasks (another
user's id is 404, as if it did not exist). Lists are paginated as the spec says: `?current_page=&page_size=`, and
`{<items>: [...], pagination: {total_items, total_pages, current_page, page_size}}`.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.exceptions import RequestDataTooBig
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authtoken.models import Token

from agent_protocol.models import ProtocolTask, UploadedArtifact
from chat.actions.sessions import do_create_session
from chat.engine.registry import begin_turn
from chat.events.log import session_group
from chat.models import Turn, TurnStatus
from chat.workspaces import WorkspaceFile, list_files, resolved_file, save_file
from core.conf import copilot_setting
from core.errors import ApplicationError, BadInput, NotAuthenticated, NotFound
from core.untrusted_json import parse_json

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
MAX_INPUT_CHARS = 100_000
ARTIFACT_NAMESPACE = uuid.UUID("9f5b8a52-8c3e-4f0c-9a0e-5d1a3c7b2e10")
FINISH_MARGIN_SECONDS = 30


class MethodNotAllowed(ApplicationError):
    code = "method_not_allowed"
    http_status = 405


def _error(exc: ApplicationError) -> JsonResponse:
    response = JsonResponse(exc.as_json(), status=exc.http_status)
    if exc.http_status == 401:
        response["WWW-Authenticate"] = "Token"
    return response


def endpoint(*methods: str):
    """An async view of the protocol: token auth, the allowed methods, and ApplicationErrors as `{code, message}`."""
    def wrap(view):
        @csrf_exempt  # token auth only: no cookie, so nothing to forge
        @functools.wraps(view)
        async def handle(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    raise MethodNotAllowed(f"{request.method} is not allowed here; use {', '.join(methods)}")
                user = await _token_user(request.headers.get("Authorization", ""))
                return await view(request, user, **kwargs)
            except ApplicationError as exc:
                return _error(exc)
            except RequestDataTooBig:
                return JsonResponse({"code": "too_large", "message": "the request body is too large"}, status=413)
        return handle
    return wrap


@database_sync_to_async
def _token_user(authorization: str):
    key = authorization.removeprefix("Token ").strip() if authorization.startswith("Token ") else ""
    token = Token.objects.select_related("user").filter(key=key).first() if key else None
    if token is None or not token.user.is_active:
        raise NotAuthenticated("send Authorization: Token <key>")
    return token.user


def _page_params(request: HttpRequest) -> tuple[int, int]:
    def number(name: str, default: int) -> int:
        raw = request.GET.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit() or int(raw) < 1:
            raise BadInput(f"{name} must be a whole number from 1")
        return int(raw)
    return number("current_page", 1), min(number("page_size", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)


def _paginated(key: str, items: list[Any], current_page: int, page_size: int) -> dict[str, Any]:
    start = (current_page - 1) * page_size
    return {key: items[start:start + page_size],
            "pagination": {"total_items": len(items), "total_pages": math.ceil(len(items) / page_size),
                           "current_page": current_page, "page_size": page_size}}


def _body(request: HttpRequest) -> dict[str, Any]:
    if not request.body.strip():
        return {}
    body = parse_json(request.body)
    if not isinstance(body, dict):
        raise BadInput("the body is a JSON object")
    return body


def _text_field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > MAX_INPUT_CHARS):
        raise BadInput(f"{name}: a string of at most {MAX_INPUT_CHARS:,} characters")
    return value


def _additional_input(body: dict[str, Any]) -> dict[str, Any]:
    value = body.get("additional_input") or {}
    if not isinstance(value, dict):
        raise BadInput("additional_input: an object")
    return value


# --- reads ---


def _access_task(user, task_id: Any) -> ProtocolTask:
    try:
        session_id = uuid.UUID(str(task_id))
    except ValueError:
        raise NotFound("no such task") from None
    task = ProtocolTask.objects.select_related("session").filter(session_id=session_id,
                                                                 session__owner=user).first()
    if task is None:
        raise NotFound("no such task")
    return task


def artifact_id_of(task: ProtocolTask, path: str) -> str:
    return str(uuid.uuid5(ARTIFACT_NAMESPACE, f"{task.session_id}/{path}"))


def _artifact_dict(task: ProtocolTask, file: WorkspaceFile, uploaded: set[str]) -> dict[str, Any]:
    folder, name = os.path.split(file.path)
    return {"artifact_id": artifact_id_of(task, file.path), "agent_created": file.path not in uploaded,
            "file_name": name, "relative_path": folder, "created_at": file.modified_at.isoformat()}


def _artifacts(task: ProtocolTask, *, since=None, until=None) -> list[dict[str, Any]]:
    uploaded = set(task.uploads.values_list("path", flat=True))
    return [_artifact_dict(task, file, uploaded) for file in list_files(task.session_id)
            if (since is None or file.modified_at >= since) and (until is None or file.modified_at <= until)]


def _task_dict(task: ProtocolTask) -> dict[str, Any]:
    return {"task_id": str(task.session_id), "input": task.input, "additional_input": task.additional_input,
            "artifacts": _artifacts(task), "created_at": task.created_at.isoformat()}


def _text_of(parts: list[dict[str, Any]]) -> str:
    return "".join(part.get("text", "") for part in sorted(parts, key=lambda p: p.get("index", 0))
                   if part.get("type") == "text")


def _step_dict(task: ProtocolTask, turn: Turn) -> dict[str, Any]:
    running = turn.status in (TurnStatus.RUNNING, TurnStatus.QUEUED)
    return {"task_id": str(task.session_id), "step_id": str(turn.id), "name": None,
            "status": "running" if running else "completed",
            "input": _text_of(turn.user_message.parts), "additional_input": {},
            "output": _text_of(turn.assistant_message.parts),
            "additional_output": {"turn_status": turn.status, **({"error": turn.error} if turn.error else {})},
            "artifacts": [] if running else _artifacts(task, since=turn.started_at, until=turn.finished_at),
            "is_last": False, "created_at": turn.started_at.isoformat()}


def _turns(task: ProtocolTask):
    return Turn.objects.filter(session_id=task.session_id).select_related(
        "user_message", "assistant_message").order_by("started_at", "id")


# --- the endpoints ---


@endpoint("GET", "POST")
async def tasks(request: HttpRequest, user) -> HttpResponse:
    if request.method == "POST":
        return JsonResponse(await database_sync_to_async(_create_task)(user, _body(request)))
    current_page, page_size = _page_params(request)
    return JsonResponse(await database_sync_to_async(_list_tasks)(user, current_page, page_size))


def _create_task(user, body: dict[str, Any]) -> dict[str, Any]:
    text, additional = _text_field(body, "input"), _additional_input(body)
    session = do_create_session(owner=user, title=(text or "Agent Protocol task").strip()[:200] or "Agent task")
    return _task_dict(ProtocolTask.objects.create(session=session, input=text, additional_input=additional))


def _list_tasks(user, current_page: int, page_size: int) -> dict[str, Any]:
    found = list(ProtocolTask.objects.filter(session__owner=user).select_related("session").order_by("-created_at"))
    page = _paginated("tasks", found, current_page, page_size)
    page["tasks"] = [_task_dict(task) for task in page["tasks"]]
    return page


@endpoint("GET")
async def task_detail(request: HttpRequest, user, task_id: str) -> HttpResponse:
    return JsonResponse(await database_sync_to_async(lambda: _task_dict(_access_task(user, task_id)))())


@endpoint("GET", "POST")
async def steps(request: HttpRequest, user, task_id: str) -> HttpResponse:
    task = await database_sync_to_async(_access_task)(user, task_id)
    if request.method == "GET":
        current_page, page_size = _page_params(request)
        return JsonResponse(await database_sync_to_async(_list_steps)(task, current_page, page_size))
    body = _body(request)
    text, _ = _text_field(body, "input"), _additional_input(body)
    if not text:
        first = not await database_sync_to_async(_turns(task).exists)()
        text = task.input if first else None
    if not text or not text.strip():
        raise BadInput("input: required (only the first step may leave it out, to run the task's input)")
    turn_id = await _run_turn(task, text)
    return JsonResponse(await database_sync_to_async(lambda: _step_dict(task, _turns(task).get(pk=turn_id)))())


def _list_steps(task: ProtocolTask, current_page: int, page_size: int) -> dict[str, Any]:
    page = _paginated("steps", list(_turns(task)), current_page, page_size)
    page["steps"] = [_step_dict(task, turn) for turn in page["steps"]]
    return page


async def _run_turn(task: ProtocolTask, text: str) -> uuid.UUID:
    """Start a turn of the task's session and wait for its `finish` (the turn's state is saved before it)."""
    session_id = str(task.session_id)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(session_group(session_id), channel)
    try:
        started = await begin_turn(session=task.session, text=text, client_message_id=uuid.uuid4())
        turn_id = str(started.turn.id)
        async with asyncio.timeout(copilot_setting("MAX_TURN_SECONDS") + FINISH_MARGIN_SECONDS):
            while True:
                message = await layer.receive(channel)
                if message.get("type") == "chat.events" and any(
                        event["turn_id"] == turn_id and event["chunk"]["type"] == "finish"
                        for event in message["events"]):
                    return started.turn.id
    finally:
        await layer.group_discard(session_group(session_id), channel)


@endpoint("GET")
async def step_detail(request: HttpRequest, user, task_id: str, step_id: str) -> HttpResponse:
    def read() -> dict[str, Any]:
        task = _access_task(user, task_id)
        try:
            turn = _turns(task).filter(pk=uuid.UUID(step_id)).first()
        except ValueError:
            turn = None
        if turn is None:
            raise NotFound("no such step")
        return _step_dict(task, turn)
    return JsonResponse(await database_sync_to_async(read)())


@endpoint("GET", "POST")
async def artifacts(request: HttpRequest, user, task_id: str) -> HttpResponse:
    task = await database_sync_to_async(_access_task)(user, task_id)
    if request.method == "GET":
        current_page, page_size = _page_params(request)
        return JsonResponse(await database_sync_to_async(
            lambda: _paginated("artifacts", _artifacts(task), current_page, page_size))())
    return JsonResponse(await database_sync_to_async(_upload)(task, request))


def _upload(task: ProtocolTask, request: HttpRequest) -> dict[str, Any]:
    upload = request.FILES.get("file")
    if upload is None:
        raise BadInput("file: a multipart/form-data file is required")
    folder = request.POST.get("relative_path") or ""
    # Django keeps only the base name of an uploaded file; the folder is the client's, checked as file tools are.
    relative = f"{folder.rstrip('/')}/{upload.name}" if folder else upload.name
    saved, _ = save_file(task.session_id, relative, upload.chunks())
    UploadedArtifact.objects.get_or_create(task=task, path=saved.path)
    return _artifact_dict(task, saved, {saved.path})


@endpoint("GET")
async def artifact_detail(request: HttpRequest, user, task_id: str, artifact_id: str) -> HttpResponse:
    def find():
        task = _access_task(user, task_id)
        for file in list_files(task.session_id):
            if artifact_id_of(task, file.path) == artifact_id:
                return resolved_file(task.session_id, file.path), os.path.basename(file.path)
        raise NotFound("no such artifact")
    path, name = await database_sync_to_async(find)()
    return FileResponse(open(path, "rb"), as_attachment=True, filename=name, content_type="application/octet-stream")
