"""The session's workspace files for people (PROTOCOL §8 Files): upload, list, download, delete.

Paths go through the file tools' own checks (chat.workspaces); an upload is written whole or not at all, within
MAX_UPLOAD_BYTES and the workspace's MAX_WORKSPACE_BYTES, never executable, and served back only as an
attachment (no browser renders it).
"""

from __future__ import annotations

from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from chat import workspaces
from chat.api.views import errors
from chat.selectors import access_session
from core.conf import copilot_setting
from core.errors import BadInput

MULTIPART_OVERHEAD_BYTES = 64 * 1024  # the form's other fields and boundaries, beyond the file itself


class UploadLimit(FileUploadHandler):
    """Stops reading an uploaded file once it passes `limit` bytes, before anything of it is kept."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


class FileSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    modified_at = serializers.DateTimeField()


class UploadedSerializer(serializers.Serializer):
    path = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    path = serializers.CharField(required=False, help_text="Where in the workspace, name included (default: the "
                                                           "upload's own name, at the top).")


def file_dict(file: workspaces.WorkspaceFile) -> dict:
    return {"path": file.path, "size": file.size, "modified_at": file.modified_at.isoformat()}


class SessionFilesView(GenericAPIView):
    parser_classes = [MultiPartParser]
    serializer_class = FileSerializer

    @extend_schema(summary="The files of the session's workspace", responses={200: FileSerializer(many=True),
                                                                              **errors()})
    def get(self, request, session_id):
        session = access_session(user=request.user, session_id=session_id)
        return Response([file_dict(file) for file in workspaces.list_files(session.id)])

    @extend_schema(summary="Upload a file into the session's workspace", request={"multipart/form-data": UploadSerializer},
                   responses={201: UploadedSerializer, **errors(400, 413, 415)})
    def post(self, request, session_id):
        session = access_session(user=request.user, session_id=session_id)
        limit = copilot_setting("MAX_UPLOAD_BYTES")
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit + MULTIPART_OVERHEAD_BYTES:
            raise workspaces.FileTooLarge(f"a file is at most {limit:,} bytes (MAX_UPLOAD_BYTES)")
        guard = UploadLimit(limit)
        request._request.upload_handlers.insert(0, guard)
        upload = request.FILES.get("file")
        if guard.exceeded:
            raise workspaces.FileTooLarge(f"a file is at most {limit:,} bytes (MAX_UPLOAD_BYTES)")
        if upload is None:
            raise BadInput("file: a file is required (multipart form field `file`)")
        path = request.data.get("path") or upload.name  # Django keeps only the upload's own name, no folders
        saved, sha256 = workspaces.save_file(session.id, path, upload.chunks())
        return Response({"path": saved.path, "size": saved.size, "sha256": sha256}, status=status.HTTP_201_CREATED)


class SessionFileView(GenericAPIView):
    serializer_class = FileSerializer

    @extend_schema(summary="Download a file of the session's workspace (as an attachment)",
                   responses={(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY,
                                                                                 description="The file's bytes"),
                              **errors(400)})
    def get(self, request, session_id, file_path):
        session = access_session(user=request.user, session_id=session_id)
        target = workspaces.resolved_file(session.id, file_path)
        return FileResponse(open(target, "rb"), as_attachment=True, filename=target.name,
                            content_type="application/octet-stream")

    @extend_schema(summary="Delete a file of the session's workspace", responses={204: None, **errors(400)})
    def delete(self, request, session_id, file_path):
        session = access_session(user=request.user, session_id=session_id)
        workspaces.delete_file(session.id, file_path)
        return Response(status=status.HTTP_204_NO_CONTENT)
