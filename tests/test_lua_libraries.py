"""The Lua libraries a script sees (cjson, bit, cmsgpack, struct) against redis-server 7.0.

Each body runs as ``EVAL body 0`` on a real redis-server and on our :class:`Engine`; the raw
replies must be the same bytes, errors included (their texts, the script's line). Round trips
check that what the libraries encode they decode again.
"""

from __future__ import annotations

import hashlib
import math
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
    # cmsgpack: a nil element keeps its index; only number keys make an array; NaN is a double;
    # uint 64 comes back as a signed integer.
    "return cjson.encode({cmsgpack.unpack('\\146\\192\\1')})",
    "return cjson.encode(cmsgpack.unpack('\\147\\192\\192\\1'))",
    "return cmsgpack.pack({['1']=1})",
    "return cmsgpack.pack({1, 2, ['3']=3})",
    "return cmsgpack.pack({[1.5]=1}, {[0]=1}, {[2^31]=1})",
    "return cmsgpack.pack(0/0, -(0/0), 2^63, -2^63, -2^63 - 2^11, -0.0, 1e-320)",
    "return cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255')",
    "return tostring(cmsgpack.unpack('\\207\\128\\0\\0\\0\\0\\0\\0\\0'))",
    "return cmsgpack.unpack('\\209\\255\\254')",
    "return cmsgpack.unpack('\\210\\128\\0\\0\\1')",
    "return {cmsgpack.unpack('\\217\\3abc', 'extra')}",
    # unpack_one and unpack_limit read their numbers before the string, as lua_Integers.
    "return {cmsgpack.unpack_one({}, 'x')}",
    "return {cmsgpack.unpack_limit({}, 'x')}",
    "return {cmsgpack.unpack_limit({}, 1, 'x')}",
    "return {cmsgpack.unpack_limit({}, 1, 1)}",
    "return {cmsgpack.unpack_limit('\\1\\2')}",
    "return {cmsgpack.unpack_one(nil, 1)}",
    "return {cmsgpack.unpack_one('\\1\\2', '1')}",
    "return {cmsgpack.unpack_one('\\1\\2', 1.5)}",
    "return {cmsgpack.unpack_one('\\1\\2', -0.5)}",
    "return {cmsgpack.unpack_one('\\1\\2', 2^32 + 1)}",
    "return {cmsgpack.unpack_one('\\1\\2', 2^31)}",
    "return {cmsgpack.unpack_one('\\1\\2', -2^31 - 1)}",
    "return {cmsgpack.unpack_one('\\1\\2', 0/0)}",
    "return {cmsgpack.unpack_limit('\\1\\2', 1, 2^32 + 1)}",
    "return {cmsgpack.unpack_limit('\\1\\2', 0/0)}",
    "return {cmsgpack.unpack_limit('\\1\\2', 1/0)}",
    "return {cmsgpack.unpack_limit('\\1\\2', 2^40)}",
    "return {cmsgpack.unpack_limit('\\1\\2', 0, 0)}",
    "return {cmsgpack.unpack_limit('\\1\\2', 0, 1)}",
    "return {cmsgpack.unpack_limit('\\1\\2', 0.5, -0.5)}",
    # The C stack: at most 8000 values, and the messages luaL_checkstack words.
    "return select('#', cmsgpack.unpack(string.rep('\\1', 7999)))",
    "return select('#', cmsgpack.unpack(string.rep('\\1', 8000)))",
    "return select('#', cmsgpack.unpack(string.rep('\\1', 7998), 'extra'))",
    "return select('#', cmsgpack.unpack(string.rep('\\1', 7998) .. '\\145\\1'))",
    "return select('#', cmsgpack.unpack(string.rep('\\1', 7997) .. '\\145\\1'))",
    "return select('#', cmsgpack.unpack(string.rep('\\1', 7996) .. '\\129\\1\\145\\1'))",
    "return select('#', cmsgpack.unpack_limit(string.rep('\\1', 8000), 7998))",
    "return select('#', cmsgpack.unpack_limit(string.rep('\\1', 8000), 7999))",
    "return select('#', cmsgpack.unpack_limit(string.rep('\\1', 8000), 8000))",
    "local t = {} for i = 1, 4001 do t[i] = i end return #cmsgpack.pack(unpack(t))",
    "local t = {} for i = 1, 4000 do t[i] = i end return #cmsgpack.pack(unpack(t))",
    "local t = {} for i = 1, 3999 do t[i] = i end t[4000] = {1} return #cmsgpack.pack(unpack(t))",
    "local t = {} for i = 1, 3998 do t[i] = i end t[3999] = {{a=1}} return"
    " #cmsgpack.pack(unpack(t))",
    "local t = {} for i = 1, 3997 do t[i] = i end t[3998] = {a={1}} return"
    " #cmsgpack.pack(unpack(t))",
    # cjson with invalid numbers on writes printf's nan and inf (the setting is put back).
    "local old = cjson.encode_invalid_numbers(true)"
    " local r = cjson.encode({0/0, -(0/0), 1/0, -1/0, {[1/0]=1}})"
    " cjson.encode_invalid_numbers(old) return r",
    "local old = cjson.encode_invalid_numbers('null') local r = cjson.encode({0/0, 1/0})"
    " cjson.encode_invalid_numbers(old) return r",
    "return cjson.encode(cjson.decode('[1e400, -1e400]'))",
]


# Numbers each integer and float format packs, then unpacks again: edges of every size, what
# C's conversions to long and unsigned long make of fractions, 2^63 and beyond, NaN and the
# infinities, and -0.0.
_EDGES = (
    "0, -1, 1, 127, 128, 255, 256, -128, -129, 32767, 32768, 65535, 65536, -32768, -32769,"
    " 2^31 - 1, 2^31, -2^31, -2^31 - 1, 2^32 - 1, 2^32, 2^53, 2^53 + 1, -2^53, 2^62, -2^63,"
    " 2^63, 2^63 + 2^11, 2^64 - 2^11, 2^64, 2^65, -2^64, 1e300, -1e300, 0.5, -0.5, 1.9, -1.9,"
    " 0/0, -(0/0), 1/0, -1/0, -0.0, 1/3, 3.4028234663852886e38, 3.4028235677973366e38, 1e-45,"
    " 1e-320"
)
_ROUND_TRIP = (
    "local out = {} for _, v in ipairs({" + _EDGES + "}) do"
    " local s = struct.pack(F, v) out[#out + 1] = s"
    " for _, x in ipairs({struct.unpack(F, s)}) do out[#out + 1] = string.format('%.17g', x) end"
    " end return out"
)
_NUMBER_FORMATS = [
    endian + opt
    for endian in ("<", ">")
    for opt in (
        *("b", "B", "h", "H", "l", "L", "T", "i", "I", "f", "d"),
        *("i1", "I1", "i2", "I2", "i3", "I3", "i5", "I6", "i7", "I7", "i8", "I8"),
        *("i9", "I9", "i12", "I16", "i16", "i32", "I32"),
    )
]

STRUCT_BODIES = [
    # Layouts, padding and alignment.
    "return struct.pack('>bBhHlLTiI', -1, 255, -2, 65534, -3, 4, 5, -6, 7)",
    "return struct.pack('<bBhHlLTiI', -1, 255, -2, 65534, -3, 4, 5, -6, 7)",
    "return struct.pack('bhi', 1, 2, 3)",
    "return struct.pack('!bhi', 1, 2, 3)",
    "return struct.pack('!2 b d b l', 1, 2, 3, 4)",
    "return struct.pack('!8 b d c3 b f', 1, 2, 'abc', 4, 5)",
    "return struct.pack('!8 b i3 b i5', 1, 2, 3, 4)",
    "return struct.pack('!4 b i3 b i6', 1, 2, 3, 4)",
    "return struct.pack('!16 b i12 b I16 b d', 1, 2, 3, 4, 5, 6)",
    "return struct.pack('!1 b d', 1, 2)",
    "return struct.pack('x b xx h x', 1, 2)",
    "return struct.pack('  b  ', 1)",
    "return struct.pack('>h<h', 1, 1)",
    "return struct.pack('i0 I0 b', 1, 2, 3)",
    "return struct.pack('')",
    "return struct.pack('b', '12')",
    "return struct.pack('b', ' 0x10 ')",
    "return struct.pack('c0s', 12, 3.5)",
    "return struct.pack('s', 'a\\0b')",
    "return struct.pack('s', '')",
    "return struct.pack('c0', '')",
    "return struct.pack('c2', 'abcd')",
    "return struct.pack('c', 'xyz')",
    "return struct.pack('b\\0z', 1)",
    "return struct.pack(string.rep('x', 9000) .. 'c0', string.rep('y', 9000))",
    "return struct.size('bhilfdTx')",
    "return struct.size('!bhilfdTx')",
    "return struct.size('!8 b d c3 !2 h')",
    "return struct.size('z5!4i3')",
    "return struct.size('!')",
    "return struct.size('')",
    "return struct.size(12)",
    "return struct.size('c2147483647')",
    "return struct.size('c2147483647c2147483647')",
    "return struct.size('i32 !32 b i32')",
    "return struct.size('!2147483648')",
    "return struct.size('i2147483647')",
    "return struct.size('c2147483648')",
    # Unpacking: values then the next position; positions, c0 and s.
    "return {struct.unpack('>bBhH', '\\255\\255\\128\\0\\255\\254')}",
    "return {struct.unpack('<i3 I3', '\\255\\255\\255\\255\\255\\255')}",
    "return {struct.unpack('b', 'abc', 2)}",
    "return {struct.unpack('b', 'abc', '3')}",
    "return {struct.unpack('b', 'abc', 1.9)}",
    "return {struct.unpack('b', 'abc', nil)}",
    "return {struct.unpack('b', 'abc', 4)}",
    "return {struct.unpack('', 'abc', 4)}",
    "return {struct.unpack('', 'abc', 5)}",
    "return {struct.unpack('', 'abc', -5)}",
    "return {struct.unpack('', 'abc', 2^62)}",
    "return {struct.unpack('', 'abc', 2^63)}",
    "return {struct.unpack('', 'abc', 0/0)}",
    "return {struct.unpack('', 'abc', -1/0)}",
    "return {struct.unpack('b', 'abc', -1)}",
    "return {struct.unpack('b', 'abc', 0)}",
    "return {struct.unpack('b', 'abc', 0.5)}",
    "return {struct.unpack('b', 'abc', 'x')}",
    "return {struct.unpack('b', 'abc', {})}",
    "return {struct.unpack('i40', 'abc', -1)}",
    "return {struct.unpack(' ', 'abc', 5)}",
    "return {struct.unpack('z', 'abc', 5)}",
    "return {struct.unpack('z', 'abc')}",
    "return {struct.unpack('!8 b d', struct.pack('!8 b d', 1, 2.5))}",
    "return {struct.unpack('!4 b i3 b i6', struct.pack('!4 b i3 b i6', 1, 2, 3, 4))}",
    "return {struct.unpack('bc0', '\\3abcd')}",
    "return {struct.unpack('bc0b', '\\0\\7')}",
    "return {struct.unpack('c1c0', '3abcd')}",
    "return {struct.unpack('c3c0', 'infab')}",
    "return {struct.unpack('c4c0', '-0.5ab')}",
    "return {struct.unpack('c2c0', '-1ab')}",
    "return {struct.unpack('c2c0', 'xyab')}",
    "return {struct.unpack('xc0', 'ab')}",
    "return {struct.unpack('c0', 'abc')}",
    "return {struct.unpack('bc0', '\\9ab')}",
    "return {struct.unpack('dc0', struct.pack('d', 2) .. 'abc')}",
    "return {struct.unpack('s', 'ab\\0cd\\0')}",
    "return {struct.unpack('ss', 'ab\\0cd\\0')}",
    "return {struct.unpack('sb', 'ab\\0\\5')}",
    "return {struct.unpack('s', 'abc')}",
    "return {struct.unpack('s', 'abc', 4)}",
    "return {struct.unpack('c3', 'ab')}",
    "return {struct.unpack('c2147483647', 'ab')}",
    "return {struct.unpack('x', '')}",
    "return {struct.unpack('i0', '')}",
    "return {struct.unpack('b', 7)}",
    "return {struct.unpack(5, '5')}",
    "return {struct.unpack('b\\0z', 'a')}",
    "return {struct.unpack('<f', '\\1\\0\\128\\127')}",
    "return tostring(struct.unpack('<f', '\\1\\0\\128\\127'))",
    "return tostring(struct.unpack('<d', '\\0\\0\\0\\0\\0\\0\\240\\255'))",
    "return struct.pack('<f', struct.unpack('<f', '\\1\\0\\130\\127'))",
    "return struct.pack('<d', struct.unpack('<d', '\\1\\0\\0\\0\\0\\0\\240\\127'))",
    "return struct.pack('>d', struct.unpack('>d', '\\255\\248\\0\\0\\0\\0\\0\\1'))",
    "return select('#', struct.unpack(string.rep('b', 7997), string.rep('a', 8000)))",
    "return select('#', struct.unpack(string.rep('b', 7998), string.rep('a', 8000)))",
    "return select('#', struct.unpack(string.rep('x', 9000), string.rep('a', 9000)))",
    "return select('#', struct.unpack(string.rep('b', 7996), string.rep('a', 8000), 1))",
    "return select('#', struct.unpack(string.rep('b', 7997), string.rep('a', 8000), 1))",
    # Errors, and the same under pcall (a Lua caller keeps the function's name).
    "return struct.pack('i33', 1)",
    "return struct.pack('I99999999999', 1)",
    "return struct.pack('c2147483648', 'a')",
    "return struct.pack('!3', 1)",
    "return struct.pack('!0')",
    "return struct.pack('!2147483648')",
    "return struct.pack('z', 1)",
    "return struct.pack('\\200')",
    "return struct.pack(1)",
    "return struct.pack({})",
    "return struct.pack()",
    "return struct.pack('b')",
    "return struct.pack('bb', 1)",
    "return struct.pack('bbb', 1)",
    "return struct.pack('d', 'x')",
    "return struct.pack('b', {})",
    "return struct.pack('s')",
    "return struct.pack('s', true)",
    "return struct.pack('c5', 'ab')",
    "return struct.pack('bc5', 1, 'ab')",
    "return struct.unpack()",
    "return struct.unpack('b')",
    "return struct.unpack('b', {})",
    "return struct.unpack({}, 'a')",
    "return struct.size()",
    "return struct.size('s')",
    "return struct.size('c0')",
    "return struct.size('#')",
    "return struct.size('i33')",
    "return select(2, pcall(struct.pack, 'i40'))",
    "return select(2, pcall(struct.pack, '!3'))",
    "return select(2, pcall(struct.unpack, 's', 'abc'))",
    "return select(2, pcall(struct.unpack, 'c0', 'abc'))",
    "return select(2, pcall(function() return struct.pack('z') end))",
    "return select(2, pcall(function() return struct.pack('b') end))",
    "return select(2, pcall(function() return struct.unpack('b', '') end))",
    "return select(2, pcall(function() return struct.unpack('b', 'a', 0) end))",
    "return select(2, pcall(function() return struct.size('s') end))",
    "local ok = pcall(struct.pack, 'i40') return struct.pack('b', 1)",
    "return {pcall(struct.unpack, 'b', 'a')}",
] + [f"local F = '{fmt}' {_ROUND_TRIP}" for fmt in _NUMBER_FORMATS]


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


@pytest.mark.parametrize("body", BODIES + STRUCT_BODIES)
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


def _lua_literal(value: int | float | bytes) -> str:
    if isinstance(value, bytes):
        return '"' + "".join(f"\\{b:03d}" for b in value) + '"'
    if isinstance(value, float) and value != value:
        return "(0/0)"
    if isinstance(value, float) and value in (math.inf, -math.inf):
        return "(1/0)" if value > 0 else "(-1/0)"
    return repr(value)


_numbers = st.one_of(
    st.integers(-(2**65), 2**65),
    st.sampled_from([0, -1, 2**31, 2**32 - 1, 2**53, 2**63, 2**64, -(2**63)]),
    st.floats(width=64),
)
_options = st.one_of(
    st.sampled_from(["b", "B", "h", "H", "l", "L", "T", "i", "I", "f", "d"]).map(
        lambda o: (o, _numbers)
    ),
    st.tuples(st.sampled_from("iI"), st.integers(0, 33)).map(lambda t: (f"{t[0]}{t[1]}", _numbers)),
    st.sampled_from(["s", "c0", "c1", "c3"]).map(lambda o: (o, st.binary(max_size=6))),
    st.sampled_from(["<", ">", "!", "!1", "!2", "!4", "!8", "!16", " ", "x", "!3", "z"]).map(
        lambda o: (o, None)
    ),
)
# What struct shows of unpacked values: numbers at full precision, strings as they are.
_SHOW = (
    " local r = {} for i, x in ipairs(v) do"
    " r[i] = type(x) == 'number' and string.format('%.17g', x) or x end return r"
)


@st.composite
def _packings(draw) -> tuple[str, list[str]]:
    fmt, args = "", []
    for option, values in draw(st.lists(_options, max_size=8)):
        fmt += option
        if values is not None:
            args.append(_lua_literal(draw(values)))
    if args and draw(st.integers(0, 9)) == 0:
        args.pop()  # one argument short: the nil b_pack pushed is read
    return fmt, args


@settings(max_examples=150, deadline=None)
@given(_packings())
def test_struct_round_trip_same_as_redis(redis, engine, packing):
    fmt, args = packing
    body = (
        f"local s = struct.pack({_lua_literal(fmt.encode())}, {', '.join(args) or 'nil'})"
        f" local v = {{s, struct.unpack({_lua_literal(fmt.encode())}, s)}}" + _SHOW
    ).encode()
    assert ours(engine, body) == redis.eval(body)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_options.map(lambda o: o[0]), max_size=8).map("".join),
    st.binary(max_size=24),
    st.one_of(st.none(), st.integers(-2, 26)),
)
def test_struct_unpack_and_size_same_as_redis(redis, engine, fmt, data, pos):
    where = "" if pos is None else f", {pos}"
    fmt_literal = _lua_literal(fmt.encode())
    body = (
        f"local v = {{struct.unpack({fmt_literal}, {_lua_literal(data)}{where})}}" + _SHOW
    ).encode()
    assert ours(engine, body) == redis.eval(body)
    body = f"return struct.size({fmt_literal})".encode()
    assert ours(engine, body) == redis.eval(body)
