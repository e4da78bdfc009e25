"""The Lua libraries a script sees (cjson, bit, cmsgpack, struct) against redis-server 7.0.

Each body runs as ``EVAL body 0`` on a real redis-server and on our :class:`Engine`; the raw
replies must be the same bytes, errors included (their texts, the script's line). Round trips
check that what the libraries encode they decode again.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardserver.scripting.environment import Engine

REDIS = shutil.which("redis-server")

BODIES = [
    "return cjson.encode({1,2,3})",
    "return cjson.encode({a=1})",
    "return cjson.encode({})",
    "return cjson.encode('\\1\\8\\127\\128/\"\\\\')",
    "return cjson.encode({1,2,3,[20]=5})",
    "return cjson.encode({[1]=1,[2]=2,[1.5]=3})",
    "return cjson.encode({[2^40]=1})",
    "return cjson.encode(0/0)",
    "return cjson.encode({[true]=1})",
    "return cjson.encode(function() end)",
    "return select(2, pcall(cjson.decode, 'x'))",
    "return cjson.decode('x')",
    "return cjson.decode('[1,2')",
    "return cjson.decode('{\"a\":1 x')",
    "return cjson.decode('\"ab')",
    "return cjson.decode('[[[[', 1)",
    "return cjson.encode(cjson.decode('[1,2,{\"a\":[true,false,null]}]'))",
    "return cjson.encode(1/3)",
    "return cjson.encode(1e15)",
    "return cjson.encode(123456789012345678)",
    "return cjson.encode(-0.0)",
    "return cjson.encode({1,nil,3})",
    "return cjson.encode({[1]=1,[3]=3})",
    "return cjson.encode({[4]=1})",
    "return cjson.encode({[11]=1})",
    "return cjson.encode(cjson.null)",
    "return {1, cjson.null, 2}",
    "return type(cjson.null)",
    "return cjson.decode('\"\\\\u00e9\\\\ud83d\\\\ude00\\\\u0041\"')",
    "return cjson.decode('\"\\\\ud83d\"')",
    "return cjson.decode('\"\\\\x\"')",
    "return cjson.decode('\"\\\\u12\"')",
    "return cjson.encode(cjson.decode('+1'))",
    "return cjson.encode(cjson.decode('0x1F'))",
    "return cjson.encode(cjson.decode('[-Infinity]'))",
    "return cjson.decode(' ')",
    "return cjson.decode('')",
    "return cjson.decode('{\"a\":1,}')",
    "return cjson.decode('{1:2}')",
    "return cjson.decode('{\"a\" 2}')",
    "return cjson.decode('[1 2]')",
    "return cjson.decode('[1] 2')",
    "return cjson.decode('-')",
    "return cjson.decode('tru')",
    "return cjson.decode('nan')",
    "return cjson.encode(cjson.decode('[1.5e3, 2E-2, 0.25]'))",
    "return cjson.decode('a\\0b')",
    "return cjson.decode('[1]\\0junk')[1]",
    "return cjson.decode(123)",
    "return cjson.decode({})",
    "return cjson.decode()",
    "return cjson.encode()",
    "return cjson.encode(1, 2)",
    "return cjson.decode_max_depth(0)",
    "return cjson.encode_max_depth('x')",
    "return cjson.encode_keep_buffer('x')",
    "return cjson.encode_keep_buffer(1, 2)",
    "return cjson.encode_number_precision(15)",
    "local t = {} local c = t for i = 1, 1000 do c[1] = {} c = c[1] end return cjson.encode(t)",
    "local t = {} local c = t for i = 1, 999 do c[1] = {} c = c[1] end return #cjson.encode(t)",
    "return cjson.decode(string.rep('[', 1001))",
    "return #cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000))",
    "return cjson.decode(string.rep('[', 1000))",
    "return bit.tobit(2^40)",
    "return bit.band()",
    "return bit.tohex(1, 'a')",
    "return bit.tobit(0xffffffff)",
    "return bit.tobit(2^32 + 5)",
    "return bit.tobit(-1)",
    "return bit.tobit(1.5)",
    "return bit.tobit(2.5)",
    "return bit.tobit(-2.5)",
    "return bit.tobit(2^53 + 2)",
    "return bit.tobit(2^60 + 2^33 + 7*2^8)",
    "return bit.tobit(-2^60 - 12345*2^8)",
    "return bit.tohex(-1)",
    "return bit.tohex(255, 2)",
    "return bit.tohex(255, -4)",
    "return bit.tohex(0x1234abcd, 12)",
    "return bit.tohex(1, 0)",
    "return bit.bnot(0)",
    "return bit.band(0xff, 0x0f, 0x3)",
    "return bit.bor(1, 2, 4, 8)",
    "return bit.bxor(0xffff, 0x00ff)",
    "return bit.lshift(1, 31)",
    "return bit.lshift(1, 32)",
    "return bit.lshift(1, 33)",
    "return bit.rshift(-1, 28)",
    "return bit.arshift(-256, 4)",
    "return bit.arshift(256, 4)",
    "return bit.rol(0x12345678, 8)",
    "return bit.ror(0x12345678, 8)",
    "return bit.bswap(0x12345678)",
    "return bit.band('12', '10')",
    "return bit.band(1, {})",
    "return bit.tohex(1, nil)",
    "return bit.rshift(1)",
    "return cmsgpack.pack(1.5)",
    "return cmsgpack.pack(0.1)",
    "return cmsgpack.pack({1,2},{a=1})",
    "return {cmsgpack.unpack(cmsgpack.pack(1,'a',{1}))}",
    "return cmsgpack.unpack('')",
    "return cmsgpack.unpack('\\193')",
    "return cmsgpack.unpack('\\205\\1')",
    "return cmsgpack.pack()",
    "return cmsgpack.pack(nil, true, false, 0, 127, 128, 255, 256, 65535, 65536, 2^32, -1)",
    "return cmsgpack.pack(-32, -33, -128, -129, -32768, -32769, -2^31, -2^31-1, -2^40)",
    "return cmsgpack.pack(string.rep('x', 31), string.rep('y', 32), string.rep('z', 300))",
    "return cmsgpack.pack({}, {[1]=1,[3]=3}, {x={y={z=1}}})",
    "local t = {} local c = t for i = 1, 20 do c[1] = {} c = c[1] end return cmsgpack.pack(t)",
    "return cmsgpack.pack(1/0, -1/0, 2^64, 1e300)",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))}",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 2)}",
    "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}",
    "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2, 1)}",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1), 5)}",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1), -1)}",
    "return cjson.encode({cmsgpack.unpack(cmsgpack.pack(-2^40, 2^40, 1.5, 'abc', {1, {2}}))})",
    "return cjson.encode({cmsgpack.unpack(cmsgpack.pack({k='v'}, {1, 2, {3}}))})",
    "return cmsgpack.unpack('\\196\\3abc')",
    "return cmsgpack.unpack('\\203\\64\\9\\33\\251\\84\\68\\45\\24') * 1000",
    "return cmsgpack.pack(function() end)",
    "return cmsgpack.unpack({})",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Raw:
    """A RESP connection that hands back each reply's raw bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    def _read(self) -> bytes:
        line = self.file.readline()
        out = line
        if line[:1] == b"$" and int(line[1:-2]) >= 0:
            out += self.file.read(int(line[1:-2]) + 2)
        elif line[:1] == b"*":
            for _ in range(max(int(line[1:-2]), 0)):
                out += self._read()
        return out

    def eval(self, body: bytes) -> bytes:
        parts = [b"EVAL", body, b"0"]
        frame = b"".join(b"$%d\r\n%b\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(b"*3\r\n" + frame)
        return self._read()


@pytest.fixture(scope="module")
def redis():
    if REDIS is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [REDIS, "--port", str(port), "--save", "", "--appendonly", "no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = _Raw(port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield conn
        conn.sock.close()
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def engine():
    return Engine(lambda argv, resp: b"+OK\r\n")


def ours(engine: Engine, body: bytes) -> bytes:
    sha = hashlib.sha1(body).hexdigest().encode()
    problem = engine.compile(sha, body)
    return problem if problem is not None else engine.run(sha, [], [], 2)


@pytest.mark.parametrize("body", BODIES)
def test_same_reply_as_redis(redis, engine, body):
    data = body.encode("latin-1")
    assert ours(engine, data) == redis.eval(data)


def test_captured_function_survives_its_error(engine):
    # A public function whose call failed is replaced in its table; the table's entry works.
    assert ours(engine, b"pcall(cjson.encode, pcall) return cjson.encode({1})") == b"$3\r\n[1]\r\n"


_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.binary(max_size=20),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=5),
        st.dictionaries(st.binary(min_size=1, max_size=8), inner, min_size=1, max_size=5),
    ),
    max_leaves=20,
)


def _lua(engine: Engine, value):
    if isinstance(value, list):
        return engine.runtime.table_from({i + 1: _lua(engine, v) for i, v in enumerate(value)})
    if isinstance(value, dict):
        return engine.runtime.table_from({k: _lua(engine, v) for k, v in value.items()})
    return value


def _py(engine: Engine, value):
    if engine.lua_type(value) == "table":
        items = dict(value.items())
        if items and all(isinstance(k, (int, float)) for k in items):
            return [_py(engine, items[i]) for i in range(1, len(items) + 1)]
        return {k: _py(engine, v) for k, v in items.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@settings(max_examples=60, deadline=None)
@given(_json)
def test_cjson_round_trip(engine, value):
    cjson = engine.runtime.globals()[b"cjson"]
    text = cjson[b"encode"](_lua(engine, value))
    assert _py(engine, cjson[b"decode"](text)) == value
