"""A confirmed gap's message names its case and what to run (the local broker cannot delete records, so the
retention case has no integration test)."""

from aiokafka import TopicPartition

from consumers.log_reader import _gap

TP = TopicPartition("loyalty.customers.v1", 0)


def test_a_position_before_the_log_start_is_retention():
    message = _gap(TP, 55, 60, 90)
    assert message.startswith("loyalty.customers.v1:0: the read-model needs offset 55, the log holds 60 up to 90")
    assert "retention deleted events" in message and "`pointsview rebuild`" in message


def test_a_position_past_the_log_end_is_a_recreated_topic_or_lost_records():
    message = _gap(TP, 55, 0, 48)
    assert "past the end of the log: the topic was recreated or the broker lost acknowledged records" in message
    assert "`pointsview rebuild`" in message and "retention" not in message
