import time

import pytest

from chat.models import Turn, TurnStatus


@pytest.fixture(autouse=True)
def turns_saved_before_the_database_is_emptied(request):
    """A page shows an answer's last word before the server has saved the turn's end: wait for that (the server is
    another process) so the next test's flush never meets a turn's last transaction."""
    yield
    if "django_db_setup" not in request.fixturenames:
        return
    deadline = time.monotonic() + 30
    while Turn.objects.filter(status__in=[TurnStatus.RUNNING, TurnStatus.QUEUED]).exists():
        assert time.monotonic() < deadline, "a turn was still running 30 s after its test"
        time.sleep(0.05)  # the server is another process: its end can only be read
