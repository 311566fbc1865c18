"""JSON API views (PROTOCOL §4): thin; the work is in actions, selectors and the engine."""

from __future__ import annotations

import uuid

from asgiref.sync import async_to_sync
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from chat.actions.sessions import (
    do_choose_model,
    do_create_session,
    do_delete_session,
    do_rename_session,
    do_set_approval_mode,
    do_switch_branch,
)
from chat.api import serializers as s
from chat.engine.control import cancel_tool_call, decide_approval, remove_queued_turn
from chat.engine.registry import begin_turn, stop_turn
from chat.export import FORMATS, check_format, export_name, exported
from chat.models import Turn
from chat.search import matches_in, search_sessions, search_words
from chat.selectors import (
    access_session,
    session_dict,
    session_snapshot,
    sessions_of,
    turn_detail_dict,
    turn_dict,
)
from chat.usage import user_usage
from core.api.schema import Pagination, error_responses
from core.conf import copilot_setting
from core.errors import NotFound

ERROR_TEXTS = {404: "No such session (or another user's)", 409: "Conflicts with the session's state"}


def errors(*codes: int) -> dict:
    return error_responses(*codes, texts=ERROR_TEXTS)


class SessionListView(GenericAPIView):
    pagination_class = Pagination
    serializer_class = s.SessionSerializer

    def get_queryset(self):
        return sessions_of(self.request.user).order_by("-updated_at", "id")

    @extend_schema(summary="Your chat sessions, newest first; with q, those that match it",
                   parameters=[OpenApiParameter("q", str, description="Words: the sessions in which each of them is "
                                                "found, in the title or a message; each result has `match`.")],
                   responses={200: s.SessionMatchSerializer(many=True), **errors(400)})
    def get(self, request):
        if not request.query_params.get("q", "").strip():
            page = self.paginate_queryset(self.get_queryset())
            return self.get_paginated_response([session_dict(session) for session in page])
        words = search_words(request.query_params["q"])
        page = self.paginate_queryset(search_sessions(request.user, words))
        matches = matches_in(page, words)
        return self.get_paginated_response([{**session_dict(session), "match": matches[session.pk].as_dict()}
                                            for session in page])

    @extend_schema(summary="Start a chat session", request=s.SessionCreateSerializer,
                   responses={201: s.SessionSerializer, **errors(400, 413, 415, 429)})
    def post(self, request):
        serializer = s.SessionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = do_create_session(owner=request.user, title=serializer.validated_data.get("title"))
        return Response(session_dict(session), status=status.HTTP_201_CREATED)


class SessionDetailView(GenericAPIView):
    serializer_class = s.SessionSnapshotSerializer

    @extend_schema(summary="The session with its messages, active turn and last_seq",
                   responses={200: s.SessionSnapshotSerializer, **errors()})
    def get(self, request, session_id):
        return Response(session_snapshot(access_session(user=request.user, session_id=session_id)))

    @extend_schema(summary="Rename the session, set its approval mode, choose its model, or switch the branch it shows",
                   request=s.SessionUpdateSerializer,
                   responses={200: s.SessionSnapshotSerializer, **errors(400, 409, 413, 415)},
                   description="Answers the session as GET does. `active_leaf`: any message of the session; the "
                               "branch through it, down to its newest message, is shown and continued.")
    def patch(self, request, session_id):
        session = access_session(user=request.user, session_id=session_id)
        serializer = s.SessionUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = serializer.validated_data
        if "model" in changes:
            do_choose_model(session=session, model=changes["model"])
        if "active_leaf" in changes:
            do_switch_branch(session=session, message_id=changes["active_leaf"])
        if "title" in changes:
            do_rename_session(session=session, title=changes["title"])
        if "approval_mode" in changes:
            do_set_approval_mode(session=session, mode=changes["approval_mode"])
        return Response(session_snapshot(session))

    @extend_schema(summary="Delete the session (not while a turn runs)", responses={204: None, **errors(409)})
    def delete(self, request, session_id):
        do_delete_session(session=access_session(user=request.user, session_id=session_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionMessagesView(GenericAPIView):
    serializer_class = s.MessageCreateSerializer
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "messages"

    @extend_schema(summary="Send a message: starts a turn", request=s.MessageCreateSerializer,
                   responses={202: s.TurnAcceptedSerializer, **errors(400, 409, 413, 415, 429)},
                   description="Idempotent on client_message_id: the same id again answers 202 with the same ids.")
    def post(self, request, session_id):
        session = access_session(user=request.user, session_id=session_id)
        serializer = s.MessageCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        started = async_to_sync(begin_turn)(
            session=session, text=serializer.validated_data["text"],
            client_message_id=serializer.validated_data.get("client_message_id") or uuid.uuid4(),
            edit_of=serializer.validated_data.get("edit_of"), queue=serializer.validated_data["queue"])
        accepted = {"turn_id": str(started.turn.id), "message_id": str(started.turn.user_message_id)}
        return Response({**accepted, "queued": True} if started.queued else accepted, status=status.HTTP_202_ACCEPTED)


class RegenerateView(GenericAPIView):
    serializer_class = s.RegenerateSerializer
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "messages"

    @extend_schema(summary="A new answer to the user message that this answer answers (regenerate, or retry)",
                   request=s.RegenerateSerializer, responses={202: s.TurnAcceptedSerializer, **errors(400, 409, 429)},
                   description="`message_id` in the answer is the user message answered, as for a send. The earlier "
                               "answer is kept as a branch. Idempotent on client_message_id.")
    def post(self, request, session_id, message_id):
        session = access_session(user=request.user, session_id=session_id)
        serializer = s.RegenerateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            answer_id = uuid.UUID(str(message_id))
        except ValueError:
            raise NotFound("no such answer in this chat") from None
        started = async_to_sync(begin_turn)(
            session=session, text="", regenerate=answer_id,
            client_message_id=serializer.validated_data.get("client_message_id") or uuid.uuid4())
        return Response({"turn_id": str(started.turn.id), "message_id": str(started.turn.user_message_id)},
                        status=status.HTTP_202_ACCEPTED)


class FormatIsOurs(DefaultContentNegotiation):
    """`?format=` names the export's format here, not one of DRF's renderers."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class SessionExportView(GenericAPIView):
    serializer_class = s.SessionSnapshotSerializer
    content_negotiation_class = FormatIsOurs

    @extend_schema(summary="The session's active branch as a file: Markdown or JSON, with tool calls",
                   parameters=[OpenApiParameter("format", str, enum=list(FORMATS), default="markdown")],
                   responses={(200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR, description="As Markdown"),
                              (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="As JSON"),
                              **errors(400)})
    def get(self, request, session_id):
        session = access_session(user=request.user, session_id=session_id)
        export_format = check_format(request.query_params.get("format", "markdown"))
        snapshot = session_snapshot(session)
        response = HttpResponse(exported(snapshot, export_format), content_type=FORMATS[export_format][0])
        response["Content-Disposition"] = f'attachment; filename="{export_name(snapshot, export_format)}"'
        return response


class ModelsView(GenericAPIView):
    serializer_class = s.ModelSerializer
    pagination_class = None

    @extend_schema(summary="The models a session may use (MODELS)", responses={200: s.ModelSerializer(many=True),
                                                                               **errors()})
    def get(self, request):
        return Response([{"id": m["id"], "label": m["label"], "default": bool(m.get("default"))}
                         for m in copilot_setting("MODELS")])


class UsageView(GenericAPIView):
    serializer_class = s.UserUsageSerializer

    @extend_schema(summary="What you spent today and on each of the last 30 days, and what is left of the budget",
                   responses={200: s.UserUsageSerializer, **errors()})
    def get(self, request):
        return Response(user_usage(request.user.pk))


class SessionStopView(GenericAPIView):
    serializer_class = s.StopAcceptedSerializer

    @extend_schema(summary="Stop the running turn", request=None,
                   responses={202: s.StopAcceptedSerializer, **errors(409)})
    def post(self, request, session_id):
        session = access_session(user=request.user, session_id=session_id)
        async_to_sync(stop_turn)(session=session)
        return Response({"stopping": True}, status=status.HTTP_202_ACCEPTED)


class ApprovalDecisionView(GenericAPIView):
    serializer_class = s.DecisionSerializer

    @extend_schema(summary="Decide a tool call that waits for your approval", request=s.DecisionSerializer,
                   responses={200: s.DecisionSerializerOut, **errors(400, 409, 413, 415)},
                   description="The first decision wins; a later one is 409 already_decided; an unknown id (or "
                               "another chat's) 404 unknown_approval.")
    def post(self, request, session_id, approval_id):
        session = access_session(user=request.user, session_id=session_id)
        serializer = s.DecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(async_to_sync(decide_approval)(session=session, approval_id=approval_id,
                                                       decision=serializer.validated_data["decision"]))


class ToolCallCancelView(GenericAPIView):
    serializer_class = s.StopAcceptedSerializer

    @extend_schema(summary="Cancel one running tool call; the turn goes on", request=None,
                   responses={202: None, **errors(409)},
                   description="The call ends with an error starting 'cancelled by the user', which the model "
                               "reads as its result. 409 not_running once it ended; 404 for a call the chat never "
                               "had; 409 not_cancellable for a tool the CLI runs itself, once started.")
    def post(self, request, session_id, tool_call_id):
        session = access_session(user=request.user, session_id=session_id)
        async_to_sync(cancel_tool_call)(session=session, tool_call_id=tool_call_id)
        return Response(status=status.HTTP_202_ACCEPTED)


class QueuedTurnView(GenericAPIView):
    serializer_class = s.TurnSerializer

    @extend_schema(summary="Remove a message that waits for its turn", responses={204: None, **errors(409)})
    def delete(self, request, session_id, turn_id):
        session = access_session(user=request.user, session_id=session_id)
        async_to_sync(remove_queued_turn)(session=session, turn_id=turn_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionTurnsView(GenericAPIView):
    pagination_class = Pagination
    serializer_class = s.TurnSerializer

    @extend_schema(summary="The session's turns, newest first", responses={200: s.TurnSerializer(many=True),
                                                                           **errors(400)})
    def get(self, request, session_id):
        session = access_session(user=request.user, session_id=session_id)
        page = self.paginate_queryset(Turn.objects.filter(session=session).order_by("-started_at", "id"))
        return self.get_paginated_response([turn_dict(turn) for turn in page])


class TurnDetailView(GenericAPIView):
    serializer_class = s.TurnDetailSerializer

    @extend_schema(summary="A turn with its tool calls", responses={200: s.TurnDetailSerializer, **errors()})
    def get(self, request, turn_id):
        try:
            turn = Turn.objects.select_related("session").get(pk=uuid.UUID(str(turn_id)),
                                                              session__owner=request.user)
        except (ValueError, Turn.DoesNotExist):
            raise NotFound("no such turn") from None
        return Response(turn_detail_dict(turn))
