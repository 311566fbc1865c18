"""`manage.py localmodel`: run the local model alone."""

import asyncio

from django.core.management.base import BaseCommand

from localmodel.server import LocalModelServer


class Command(BaseCommand):
    help = "Serve the local model (an Anthropic Messages API stand-in) on a loopback port."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=0, help="0 picks a free port")

    def handle(self, *args, host: str, port: int, **options):
        asyncio.run(self._serve(LocalModelServer(host=host, port=port)))

    async def _serve(self, server: LocalModelServer) -> None:
        await server.start_async()
        self.stdout.write(f"Local model listening on {server.url}", ending="\n")
        self.stdout.flush()
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop_async()
