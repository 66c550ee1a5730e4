"""Wake-ups between processes: what is published reaches every listener of its channel, and
only those; a listener that is gone costs the publisher nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from teaclave_infer.domain.signals import Channel, SocketSignals, ThreadSignals, signals_for

POSTGRES = os.environ.get("TEACLAVE_TEST_POSTGRES_URL")  # CI sets it; else SQLite only
HANG_GUARD_S = 30  # a bound on a hang, never a figure the test measures


@pytest.fixture(params=["sqlite", "memory", *(["postgresql"] if POSTGRES else [])])
def signals(request, tmp_path):
    if request.param == "sqlite":
        return signals_for(f"sqlite:///{tmp_path / 'teaclave.db'}")
    if request.param == "memory":
        return signals_for("sqlite://")
    return signals_for(POSTGRES)


def test_the_database_url_chooses_the_kind(tmp_path):
    assert isinstance(signals_for(f"sqlite:///{tmp_path / 'x.db'}"), SocketSignals)
    assert isinstance(signals_for("sqlite://"), ThreadSignals)


def heard(listener, count: int) -> list[str]:
    """What `listener` hears until `count` payloads came: PostgreSQL may deliver two NOTIFYs
    apart, the second whenever the listening backend next runs (later on a busy machine)."""
    got: list[str] = []
    while len(got) < count:
        more = listener.wait(HANG_GUARD_S)
        assert more, f"heard only {got}"
        got += more
    return got


def test_every_listener_of_a_channel_hears_it_and_no_other(signals):
    with (
        signals.listen(Channel.ENDED) as a,
        signals.listen(Channel.ENDED) as b,
        signals.listen(Channel.STAGED) as other,
    ):
        signals.publish(Channel.ENDED, "task-1")
        signals.publish(Channel.ENDED, "task-2")
        assert heard(a, 2) == ["task-1", "task-2"]
        assert heard(b, 2) == ["task-1", "task-2"]
        assert a.wait(0) == [] and other.wait(0.2) == []


def test_nothing_published_is_nothing_heard(signals):
    with signals.listen(Channel.STAGED) as listener:
        assert listener.wait(0) == []


def test_a_gone_listener_is_forgotten(tmp_path):
    signals = signals_for(f"sqlite:///{tmp_path / 'teaclave.db'}")
    # A process that listened and died without cleaning up leaves its marker behind.
    code = textwrap.dedent(f"""
        import os
        from teaclave_infer.domain.signals import Channel, signals_for
        s = signals_for("sqlite:///{tmp_path / "teaclave.db"}")
        with s.listen(Channel.STAGED):
            os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    markers = tmp_path / "teaclave.db.signals" / Channel.STAGED.value
    assert len(list(markers.iterdir())) == 1
    signals.publish(Channel.STAGED)
    assert list(markers.iterdir()) == []


def test_another_process_wakes_a_listener(tmp_path):
    url = f"sqlite:///{tmp_path / 'teaclave.db'}"
    code = textwrap.dedent(f"""
        from teaclave_infer.domain.signals import Channel, signals_for
        signals_for("{url}").publish(Channel.ENDED, "from-afar")
    """)
    with signals_for(url).listen(Channel.ENDED) as listener:
        subprocess.run([sys.executable, "-c", code], check=True)
        assert listener.wait(10) == ["from-afar"]


def test_a_socket_listener_hears_only_its_own_account(tmp_path):
    """The kernel names each datagram's sender: what another account sent is dropped (here the
    listener believes it runs as another account; tests/security sends as one, as root)."""
    signals = SocketSignals(tmp_path / "teaclave.db.signals")
    with signals.listen(Channel.ENDED) as listener:
        listener.uid = os.getuid() + 1  # type: ignore[attr-defined]
        signals.publish(Channel.ENDED, "from-another-account")  # queued before publish returns
        assert listener.wait(0) == []
        listener.uid = os.getuid()  # type: ignore[attr-defined]
        signals.publish(Channel.ENDED, "from-this-account")
        assert listener.wait(0) == ["from-this-account"]
