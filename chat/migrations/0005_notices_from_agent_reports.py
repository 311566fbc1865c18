"""Agent reports, kept by agents until now, become the sessions' notices (same kinds, payloads and seqs)."""

from django.db import migrations


def copy_reports(apps, schema_editor):
    AgentReport = apps.get_model("agents", "AgentReport")
    SessionNotice = apps.get_model("chat", "SessionNotice")
    for report in AgentReport.objects.order_by("id"):
        about = report.run_id if report.kind == "agent-run" else report.agent_id
        notice, _ = SessionNotice.objects.get_or_create(
            session_id=report.session_id, key=f"{report.kind}:{about or report.pk}",
            defaults={"kind": report.kind, "payload": report.payload, "seq": report.seq})
        SessionNotice.objects.filter(pk=notice.pk).update(created_at=report.created_at)


class Migration(migrations.Migration):

    dependencies = [
        ("chat", "0004_session_notices"),
        ("agents", "0001_initial"),
    ]

    operations = [migrations.RunPython(copy_reports, migrations.RunPython.noop)]
