"""The ops app: it watches turns and agent runs (metrics, traces, log context) from the moment the app is ready."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from agents import observers as run_observers
        from chat.engine import observers
        from core.conf import copilot_setting
        from ops.logs import LogContextObserver
        from ops.metrics import MetricsObserver, count_agent_run
        from ops.tracing import TracingObserver, configure_export

        if copilot_setting("TRACES_ENDPOINT"):
            configure_export()
        for observer in (LogContextObserver(), TracingObserver(), MetricsObserver()):
            observers.register(observer)
        run_observers.register(count_agent_run)
