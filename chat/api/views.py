"""JSON API views: thin; the work is in actions, selectors and the engine."""

from __future__ import annotations

import uuid

from asgiref.sync import async_to_sync
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.actions.sessions import do_create_session
from chat.actions.turns import check_client_message_id
from chat.engine.registry import begin_turn, stop_turn
from chat.selectors import access_session, session_dict, session_snapshot, sessions_of


class SessionCreateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False, default="New chat")


class MessageSerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False, allow_blank=True)
    client_message_id = serializers.UUIDField(required=False)


class SessionListView(APIView):
    def get(self, request):
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(sessions_of(request.user).order_by("-updated_at"), request, view=self)
        return paginator.get_paginated_response([session_dict(session) for session in page])

    def post(self, request):
        serializer = SessionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = do_create_session(owner=request.user, title=serializer.validated_data["title"])
        return Response(session_dict(session), status=status.HTTP_201_CREATED)


class SessionDetailView(APIView):
    def get(self, request, session_id):
        return Response(session_snapshot(access_session(user=request.user, session_id=session_id)))


class SessionMessagesView(APIView):
    def post(self, request, session_id):
        session = access_session(user=request.user, session_id=session_id)
        serializer = MessageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        client_message_id = check_client_message_id(serializer.validated_data.get("client_message_id") or uuid.uuid4())
        started = async_to_sync(begin_turn)(session=session, text=serializer.validated_data["text"],
                                            client_message_id=client_message_id)
        return Response({"turn_id": str(started.turn.id), "message_id": str(started.turn.user_message_id)},
                        status=status.HTTP_202_ACCEPTED)


class SessionStopView(APIView):
    def post(self, request, session_id):
        session = access_session(user=request.user, session_id=session_id)
        async_to_sync(stop_turn)(session=session)
        return Response({"stopping": True}, status=status.HTTP_202_ACCEPTED)
