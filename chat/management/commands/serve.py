"""`manage.py serve`: everything a user needs — migrations, a demo user, the local model, the web server and
the background workers of agents."""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"


class Command(BaseCommand):
    help = "Serve copilot: apply migrations, ensure a demo user, start the local model and daphne."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-demo-user", action="store_true", help="do not create the demo user")

    def handle(self, *args, host: str, port: int, no_demo_user: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)
        if not no_demo_user:
            self._ensure_demo_user()
        if settings.COPILOT["USE_LOCAL_MODEL"]:
            from localmodel.server import LocalModelServer

            local_model = LocalModelServer()
            settings.COPILOT["ANTHROPIC_BASE_URL"] = local_model.start()
            self.stdout.write(f"Local model at {settings.COPILOT['ANTHROPIC_BASE_URL']}")
        else:
            self.stdout.write(f"Model endpoint: {settings.COPILOT['ANTHROPIC_BASE_URL'] or 'Claude (api.anthropic.com)'}")
        workers = self._start_workers()
        try:
            self._serve(host, port)
        finally:
            if workers is not None:
                workers.stop()

    def _start_workers(self):
        """The agents workers, child processes on the same database and model; None when AGENT_WORKERS is 0."""
        from agents.supervisor import WorkerSupervisor

        count = settings.COPILOT["AGENT_WORKERS"]
        if count <= 0:
            return None
        env = dict(os.environ)
        if settings.COPILOT["ANTHROPIC_BASE_URL"]:
            env["ANTHROPIC_BASE_URL"] = settings.COPILOT["ANTHROPIC_BASE_URL"]  # the local model started above
        workers = WorkerSupervisor(count=count, env=env)
        workers.start()
        self.stdout.write(f"{count} agents worker(s) started")
        return workers

    def _ensure_demo_user(self) -> None:
        User = get_user_model()
        if not User.objects.filter(username=DEMO_USERNAME).exists():
            User.objects.create_user(DEMO_USERNAME, password=DEMO_PASSWORD)

    def _serve(self, host: str, port: int) -> None:
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from agents.supervisor import attach_report_relay_to_daphne
        from copilot_site.asgi import application

        attach_report_relay_to_daphne()

        shown_host = f"[{host}]" if ":" in host else host
        self.stdout.write(f"copilot is ready at http://{shown_host}:{port}/accounts/login/")
        self.stdout.write(f"Log in as {DEMO_USERNAME!r} with password {DEMO_PASSWORD!r}. Stop with Ctrl+C.")
        self.stdout.flush()
        server = Server(application=application,
                        endpoints=build_endpoint_description_strings(host=host, port=port),
                        signal_handlers=True, websocket_handshake_timeout=10,
                        # Websocket pings keep idle sockets open through proxies (nginx drops them after 60 s).
                        ping_interval=settings.COPILOT["HEARTBEAT_SECONDS"], ping_timeout=30)
        server.run()  # SIGTERM ends running turns first: see chat.engine.lifecycle
