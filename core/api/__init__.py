"""The API base every domain builds on: error responses, pagination, strict request serializers, safe parsing."""
