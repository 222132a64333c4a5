"""Background jobs: ``Periodic`` rounds and a ``Once`` job that ends when asked."""

import threading

from service.background import Once, Periodic


def test_once_runs_its_job_once_and_stop_ends_it_early() -> None:
    started, rounds = threading.Event(), []

    def job(stop: threading.Event) -> None:
        started.set()
        while not stop.wait(0.01):
            rounds.append(1)

    once = Once("test-once", job)
    once.start()
    assert started.wait(5)
    once.stop()  # returns once the job saw its stop
    assert not once._thread.is_alive()


def test_a_failing_once_job_is_logged_not_raised(caplog) -> None:  # type: ignore[no-untyped-def]
    def job(stop: threading.Event) -> None:
        raise RuntimeError("boom")

    once = Once("test-fail", job)
    once.start()
    once.stop()
    assert "test-fail failed" in caplog.text


def test_periodic_calls_again_until_stopped() -> None:
    calls = threading.Semaphore(0)
    job = Periodic("test-periodic", 0.01, calls.release)
    job.start()
    assert calls.acquire(timeout=5) and calls.acquire(timeout=5)  # at least two rounds
    job.stop()
