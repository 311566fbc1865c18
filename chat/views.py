"""Server-rendered pages: the session list and the chat page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from chat.actions.sessions import do_create_session, do_delete_session, do_rename_session
from chat.errors import TurnRunning
from chat.models import ChatSession, TurnStatus
from chat.search import highlighted, matches_in, search_sessions, search_words
from chat.selectors import access_session, session_snapshot, sessions_of
from chat.usage import spent_today
from core.conf import copilot_setting
from core.errors import ApplicationError

MAX_SEARCH_RESULTS = 50


def own_session(request: HttpRequest, session_id) -> ChatSession:
    return access_session(user=request.user, session_id=session_id)  # NotFound: the 404 page


@login_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    """The user's chats, newest first; with `q`, those that match it, the matches marked."""
    query = request.GET.get("q", "").strip()
    sessions = sessions_of(request.user).order_by("-updated_at")
    context = {"query": query, "results": None}
    if query:
        try:
            words = search_words(query)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            sessions = list(search_sessions(request.user, words)[:MAX_SEARCH_RESULTS])
            matches = matches_in(sessions, words)
            context["results"] = [
                {"session": session, "title": highlighted(session.title, words),
                 "snippet": highlighted(matches[session.pk].snippet, words) if matches[session.pk].message_id else []}
                for session in sessions]
    running = set(sessions_of(request.user).filter(turns__status=TurnStatus.RUNNING).values_list("id", flat=True))
    return render(request, "chat/session_list.html", {**context, "sessions": sessions, "running": running})


@login_required
@require_POST
def session_create(request: HttpRequest) -> HttpResponse:
    session = do_create_session(owner=request.user)
    return redirect("chat:session", session_id=session.id)


@login_required
@require_GET
def session_page(request: HttpRequest, session_id) -> HttpResponse:
    session = own_session(request, session_id)
    budget = copilot_setting("USER_DAILY_BUDGET_USD")
    page_data = {"budget_usd": budget, "spent_today_usd": spent_today(request.user.pk)}
    return render(request, "chat/session.html", {"session": session, "snapshot": session_snapshot(session),
                                                 "models": copilot_setting("MODELS"), "page_data": page_data})


@login_required
@require_POST
def session_rename(request: HttpRequest, session_id) -> HttpResponse:
    session = own_session(request, session_id)
    try:
        do_rename_session(session=session, title=request.POST.get("title", ""))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("chat:sessions")


@login_required
@require_POST
def session_delete(request: HttpRequest, session_id) -> HttpResponse:
    session = own_session(request, session_id)
    try:
        do_delete_session(session=session)
    except TurnRunning:
        messages.error(request, f"“{session.title}” has a running turn: stop it before deleting the chat.")
    else:
        messages.success(request, f"Deleted “{session.title}”.")
    return redirect("chat:sessions")
