"""Server-rendered pages: the session list and the chat page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from chat.actions.sessions import do_create_session
from chat.errors import NotFound
from chat.models import TurnStatus
from chat.selectors import access_session, session_snapshot, sessions_of


@login_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    sessions = sessions_of(request.user).order_by("-updated_at")
    running = set(sessions.filter(turns__status=TurnStatus.RUNNING).values_list("id", flat=True))
    return render(request, "chat/session_list.html", {"sessions": sessions, "running": running})


@login_required
@require_POST
def session_create(request: HttpRequest) -> HttpResponse:
    session = do_create_session(owner=request.user)
    return redirect("chat:session", session_id=session.id)


@login_required
@require_GET
def session_page(request: HttpRequest, session_id: str) -> HttpResponse:
    try:
        session = access_session(user=request.user, session_id=session_id)
    except NotFound:
        raise Http404("no such session") from None
    return render(request, "chat/session.html", {"session": session, "snapshot": session_snapshot(session)})
