"""The pub/sub registry alone (shardserver/pubsub.py): subscriptions kept on both sides,
delivery to channels and patterns, frames in RESP2 and RESP3, PUBSUB's questions; and the
``client-output-buffer-limit`` setting's parsing (shardserver/config.py)."""

from __future__ import annotations

import pytest

from shardserver.config import DEFAULT_BUFFER_LIMITS, Config, ConfigError, buffer_limits
from shardserver.config import SETTINGS as CONFIG_SETTINGS
from shardserver.pubsub import PubSub, frame


class Subscriber:
    """What the registry needs of a client: its protocol, its sets, and push()."""

    def __init__(self, protocol: int = 2) -> None:
        self.protocol = protocol
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}
        self.shard_channels: dict[bytes, None] = {}
        self.received: list[bytes] = []

    def push(self, data: bytes) -> None:
        self.received.append(data)


def test_frames_in_both_protocols() -> None:
    assert frame(2, b"subscribe", [b"a", 1]) == b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
    assert frame(3, b"subscribe", [b"a", 1]) == b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
    assert frame(2, b"unsubscribe", [None, 0]) == b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
    assert frame(3, b"unsubscribe", [None, 0]) == b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"


def test_subscriptions_are_kept_on_both_sides() -> None:
    registry, client = PubSub(), Subscriber()
    assert registry.subscribe(client, b"a") is True
    assert registry.subscribe(client, b"a") is False
    assert registry.subscribe(client, b"b") is True
    assert registry.psubscribe(client, b"h*") is True
    assert registry.ssubscribe(client, b"s") is True
    assert list(client.channels) == [b"a", b"b"]
    assert registry.active(False, None) == [b"a", b"b"]
    assert registry.active(True, None) == [b"s"]
    assert registry.pattern_names() == [b"h*"]
    assert registry.unsubscribe(client, b"a") is True
    assert registry.unsubscribe(client, b"a") is False
    assert registry.active(False, None) == [b"b"]
    registry.drop(client)
    assert not client.channels and not client.patterns and not client.shard_channels
    assert registry.active(False, None) == [] and registry.pattern_names() == []
    assert registry.active(True, None) == []
    assert registry.deliver(b"b", b"x") == 0 and client.received == []


def test_delivery_to_channels_then_patterns_in_subscription_order() -> None:
    registry = PubSub()
    first, second, third = Subscriber(), Subscriber(3), Subscriber()
    registry.subscribe(second, b"news")
    registry.subscribe(first, b"news")
    registry.psubscribe(third, b"n*")
    registry.psubscribe(first, b"n[aeiou]ws")
    registry.psubscribe(first, b"x*")
    assert registry.deliver(b"news", b"hi\r\nthere") == 4
    assert second.received == [b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$9\r\nhi\r\nthere\r\n"]
    assert first.received == [
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$9\r\nhi\r\nthere\r\n",
        b"*4\r\n$8\r\npmessage\r\n$10\r\nn[aeiou]ws\r\n$4\r\nnews\r\n$9\r\nhi\r\nthere\r\n",
    ]
    assert third.received == [
        b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$9\r\nhi\r\nthere\r\n"
    ]
    assert registry.deliver(b"other", b"x") == 0
    assert registry.counts(False, [b"news", b"n*", b"zz"]) == [2, 0, 0]


def test_empty_channel_matches_only_the_empty_pattern() -> None:
    registry, client = PubSub(), Subscriber()
    registry.psubscribe(client, b"*")
    registry.psubscribe(client, b"")
    assert registry.deliver(b"", b"m") == 1
    assert client.received == [b"*4\r\n$8\r\npmessage\r\n$0\r\n\r\n$0\r\n\r\n$1\r\nm\r\n"]
    assert registry.deliver(b"a", b"m") == 1
    registry.subscribe(client, b"")
    assert registry.active(False, b"*") == [] and registry.active(False, b"") == [b""]


def test_binary_channels_and_patterns() -> None:
    registry, client = PubSub(), Subscriber()
    channel = b"\x00\xff\r\nbin"
    registry.subscribe(client, channel)
    registry.psubscribe(client, b"\x00*")
    assert registry.deliver(channel, b"\r\n") == 2
    assert client.received[0] == b"*3\r\n$7\r\nmessage\r\n$7\r\n" + channel + b"\r\n$2\r\n\r\n\r\n"


def test_a_pattern_forgotten_when_its_last_subscriber_goes() -> None:
    registry, one, two = PubSub(), Subscriber(), Subscriber()
    registry.psubscribe(one, b"a*")
    registry.psubscribe(two, b"a*")
    registry.punsubscribe(one, b"a*")
    assert registry.deliver(b"ab", b"m") == 1
    registry.drop(two)
    assert registry.pattern_names() == [] and registry.deliver(b"ab", b"m") == 0


def test_shard_channels_are_apart() -> None:
    registry, client = PubSub(), Subscriber()
    registry.ssubscribe(client, b"s")
    assert registry.deliver(b"s", b"m") == 0
    assert registry.deliver_shard(b"s", b"m") == 1
    assert client.received == [b"*3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$1\r\nm\r\n"]
    assert registry.counts(True, [b"s", b"t"]) == [1, 0]


def test_a_subscriber_that_leaves_during_delivery() -> None:
    registry = PubSub()

    class Leaving(Subscriber):
        def push(self, data: bytes) -> None:
            registry.drop(self)  # as a client closed for its output limit may

    leaving, staying = Leaving(), Subscriber()
    registry.subscribe(leaving, b"c")
    registry.subscribe(staying, b"c")
    assert registry.deliver(b"c", b"m") == 2
    assert registry.counts(False, [b"c"]) == [1]


def _config() -> Config:
    return Config({name: setting.default for name, setting in CONFIG_SETTINGS.items()})


def test_buffer_limits_change_only_the_classes_named() -> None:
    config = _config()
    assert config["client-output-buffer-limit"] == DEFAULT_BUFFER_LIMITS
    config.set("client-output-buffer-limit", "pubsub 1mb 512kb 60")
    assert config["client-output-buffer-limit"] == (
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 1048576 524288 60"
    )
    config.set("client-output-buffer-limit", "REPLICA 1 2 3 normal 1k 0 0")
    assert buffer_limits(config["client-output-buffer-limit"]) == {
        "normal": (1000, 0, 0),
        "slave": (1, 2, 3),
        "pubsub": (1048576, 524288, 60),
    }
    config.set("client-output-buffer-limit", "")
    assert buffer_limits(config["client-output-buffer-limit"])["slave"] == (1, 2, 3)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("pubsub 1mb 512kb", "Wrong number of arguments in buffer limit configuration."),
        ("foo 1 1 1", "Invalid client class specified in buffer limit configuration."),
        ("master 1 1 1", "Invalid client class specified in buffer limit configuration."),
        ("normal 1x 1 1", "Error in hard, soft or soft_seconds setting"),
        ("normal 0 0 -1", "Error in hard, soft or soft_seconds setting"),
        ("normal 1 -1 1", "Error in hard, soft or soft_seconds setting"),
    ],
)
def test_buffer_limits_refused_as_redis_refuses_them(value: str, message: str) -> None:
    config = _config()
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        config.set("client-output-buffer-limit", value)
    assert config["client-output-buffer-limit"] == DEFAULT_BUFFER_LIMITS
