"""`manage.py serve`: everything a user needs — migrations, a demo user, the local model, the web server and
the background workers of agents.

On loopback it is a workstation: the demo user demo / demo-password is created and printed. On any other
address it is a server: it refuses to start with the development secret key, and creates no demo user unless
the operator names a password for one (`--demo-password`).
"""

from __future__ import annotations

import ipaddress
import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"
# Autobahn closes a connection whose message passes its limit; ours (MAX_FRAME_BYTES) answers `too_large` and
# keeps the socket, so the server's own limit sits well above it.
SERVER_FRAME_LIMIT_FACTOR = 8


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def websocket_message_limit() -> int:
    return SERVER_FRAME_LIMIT_FACTOR * settings.COPILOT["MAX_FRAME_BYTES"]


class Command(BaseCommand):
    help = "Serve copilot: apply migrations, ensure a demo user, start the local model and daphne."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-demo-user", action="store_true", help="do not create the demo user")
        parser.add_argument("--demo-password", default=None,
                            help="create (or reset) the demo user with this password; on a public address it is "
                                 "the only way to get one")

    def handle(self, *args, host: str, port: int, no_demo_user: bool, demo_password: str | None, **options):
        local = is_loopback(host)
        if not local and settings.SECRET_KEY == settings.DEVELOPMENT_SECRET_KEY:
            raise CommandError(f"refusing to serve on {host}, a public address, with the development secret key: "
                               "set DJANGO_SECRET_KEY to a long random value")
        if demo_password is not None:
            self._check_password(demo_password)
        call_command("migrate", interactive=False, verbosity=0)
        demo = None
        if not no_demo_user and (local or demo_password is not None):
            demo = self._ensure_demo_user(demo_password)
        if settings.COPILOT["USE_LOCAL_MODEL"]:
            from localmodel.server import LocalModelServer

            local_model = LocalModelServer()
            settings.COPILOT["ANTHROPIC_BASE_URL"] = local_model.start()
            self.stdout.write(f"Local model at {settings.COPILOT['ANTHROPIC_BASE_URL']}")
        else:
            self.stdout.write(f"Model endpoint: {settings.COPILOT['ANTHROPIC_BASE_URL'] or 'Claude (api.anthropic.com)'}")
        from ops.metrics import forget_processes_gone

        forget_processes_gone()  # the figures of an earlier run's processes; this run's workers start from zero
        workers = self._start_workers()
        try:
            self._serve(host, port, demo)
        finally:
            if workers is not None:
                workers.stop()

    def _check_password(self, password: str) -> None:
        try:
            validate_password(password, get_user_model()(username=DEMO_USERNAME))
        except ValidationError as exc:
            raise CommandError(f"--demo-password: {' '.join(exc.messages)}") from None

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

    def _ensure_demo_user(self, password: str | None) -> tuple[str, str]:
        """The demo user, created when missing; its password set when one is given. Returns what to print."""
        User = get_user_model()
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            User.objects.create_user(DEMO_USERNAME, password=password or DEMO_PASSWORD)
        elif password is not None:
            user.set_password(password)
            user.save(update_fields=["password"])
        return DEMO_USERNAME, password or DEMO_PASSWORD

    def _serve(self, host: str, port: int, demo: tuple[str, str] | None) -> None:
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from copilot_site.asgi import application

        shown_host = f"[{host}]" if ":" in host else host
        self.stdout.write(f"copilot is ready at http://{shown_host}:{port}/accounts/login/")
        if demo is not None and demo[1] == DEMO_PASSWORD:
            self.stdout.write(f"Log in as {demo[0]!r} with password {demo[1]!r}. Stop with Ctrl+C.")
        elif demo is not None:
            self.stdout.write(f"Log in as {demo[0]!r} with the password you chose. Stop with Ctrl+C.")
        else:
            self.stdout.write("Stop with Ctrl+C. Create users with `manage.py createsuperuser`.")
        self.stdout.flush()
        server = Server(application=application,
                        endpoints=build_endpoint_description_strings(host=host, port=port),
                        signal_handlers=True, websocket_handshake_timeout=10,
                        websocket_max_message_size=websocket_message_limit(),
                        websocket_max_frame_size=websocket_message_limit(),
                        # Websocket pings keep idle sockets open through proxies (nginx drops them after 60 s).
                        ping_interval=settings.COPILOT["HEARTBEAT_SECONDS"], ping_timeout=30)
        server.run()  # SIGTERM ends running turns first: see chat.lifecycle
