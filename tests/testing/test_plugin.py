"""The plugin as a user meets it: a test file of theirs run by pytest with the plugin loaded."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)

PLUGIN = ("-p", "odradek.testing.plugin")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(*PLUGIN, "-p", "no:cacheprovider", "-rs", *args)


def test_fixtures_serve_any_client_library(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from kafka import KafkaConsumer

        def test_confluent_in_kafka_python_out(
            kafka_topic, kafka_producer_factory, bootstrap_servers, kafka_admin
        ):
            topic = kafka_topic(partitions=2)
            assert sorted(kafka_admin.list_topics(topic).topics[topic].partitions) == [0, 1]
            producer = kafka_producer_factory()
            producer.produce(topic, key=b"k", value=b"hello")
            assert producer.flush(10) == 0
            consumer = KafkaConsumer(
                topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest"
            )
            try:
                values = []
                for _ in range(50):
                    for records in consumer.poll(timeout_ms=200).values():
                        values += [r.value for r in records]
                    if values:
                        break
                assert values == [b"hello"]
            finally:
                consumer.close()

        def test_consumer_factory(kafka_topic, kafka_producer_factory, kafka_consumer_factory):
            topic = kafka_topic()
            producer = kafka_producer_factory()
            producer.produce(topic, value=b"v")
            producer.flush(10)
            consumer = kafka_consumer_factory(group="g", topics=[topic])
            message = None
            for _ in range(100):
                message = consumer.poll(0.2)
                if message is not None:
                    break
            assert message is not None and message.value() == b"v"
        """
    )
    result = run(pytester, "-k", "kafka_python or consumer_factory")
    result.assert_outcomes(passed=2)


SCOPE_CHECK = """
    import os
    SEEN = []

    def test_one(kafka_broker):
        SEEN.append((kafka_broker.bootstrap_servers, str(kafka_broker.data_dir)))

    def test_two(kafka_broker):
        SEEN.append((kafka_broker.bootstrap_servers, str(kafka_broker.data_dir)))

    def test_count():
        assert len(set(SEEN)) == int(os.environ["EXPECTED_BROKERS"])
"""


@pytest.mark.parametrize(("args", "expected"), [((), 2), (("--odradek-scope=session",), 1)])
def test_scope(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], expected: int
) -> None:
    pytester.makepyfile(SCOPE_CHECK)
    monkeypatch.setenv("EXPECTED_BROKERS", str(expected))
    run(pytester, *args).assert_outcomes(passed=3)


def test_scope_from_ini(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("[pytest]\nodradek_scope = session\n")
    pytester.makepyfile(SCOPE_CHECK)
    monkeypatch.setenv("EXPECTED_BROKERS", "1")
    run(pytester).assert_outcomes(passed=3)


def test_process_mode_runs_the_broker_in_a_subprocess(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os

        def test_process(kafka_broker, kafka_topic, kafka_producer_factory):
            assert kafka_broker.mode == "process"
            assert kafka_broker.proc.pid != os.getpid()
            producer = kafka_producer_factory()
            producer.produce(kafka_topic(), value=b"v")
            assert producer.flush(10) == 0
        """
    )
    run(pytester, "--odradek-mode=process").assert_outcomes(passed=1)


def test_a_failing_test_shows_the_subprocess_broker_output(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_fails(kafka_broker):\n    assert False\n")
    result = run(pytester, "--odradek-mode=process")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*odradek broker 127.0.0.1:*", "*odradek 0.1.0 ready*"])


def test_overrides_from_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nodradek_overrides =\n    num.partitions = 3\n")
    pytester.makepyfile(
        """
        def test_auto_created_topic_has_three_partitions(kafka_producer_factory, kafka_admin):
            producer = kafka_producer_factory()
            producer.produce("auto-created", value=b"v")
            assert producer.flush(10) == 0
            topic = kafka_admin.list_topics("auto-created", timeout=10).topics["auto-created"]
            assert len(topic.partitions) == 3
        """
    )
    run(pytester).assert_outcomes(passed=1)


def test_clients_are_closed_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        KEPT = []

        def test_make(kafka_consumer_factory):
            KEPT.append(kafka_consumer_factory(group="g"))

        def test_closed():
            with pytest.raises(RuntimeError, match="closed"):
                KEPT[0].poll(0)
        """
    )
    run(pytester, "-p", "no:randomly").assert_outcomes(passed=2)


def test_parallel_workers_get_brokers_of_their_own(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_produce(n, kafka_broker, kafka_topic, kafka_producer_factory):
            producer = kafka_producer_factory()
            producer.produce(kafka_topic(), value=b"%d" % n)
            assert producer.flush(30) == 0  # two workers start brokers at once: allow for load

        @pytest.mark.parametrize("n", range(4))
        def test_shared(n, kafka_broker_session, tmp_path):
            assert kafka_broker_session.running
        """
    )
    run(pytester, "-n", "2").assert_outcomes(passed=10)


def test_faults_are_lifted_after_each_test_of_a_shared_broker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import errno

        def test_leaves_faults(kafka_broker_session):
            kafka_broker_session.faults.delay(1000, api="produce")
            kafka_broker_session.disk.fail("fsync", errno.EIO)
            kafka_broker_session.pause()

        def test_finds_none(kafka_broker_session, kafka_producer_factory, kafka_topic):
            assert kafka_broker_session.node.faults is None
            assert kafka_broker_session.disk.injected == 0
            producer = kafka_producer_factory(acks="all")
            producer.produce(kafka_topic(), value=b"v")
            assert producer.flush(10) == 0
        """
    )
    run(pytester, "-p", "no:randomly").assert_outcomes(passed=2)
