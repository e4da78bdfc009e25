"""The Lua debugger's own part: its protocol, its state, its commands and its output.

This is Redis 7.0's LDB (``eval.c``, the ``ldb*`` functions) for one debugging session,
apart from where the session's input comes from and its output goes (the owner gives
``wait_input`` and ``write``: :mod:`shardserver.scripting.debugging`):

- :func:`parse_command` reads the client's raw bytes the way ``ldbReplParseCommand`` does
  (a forgiving multi-bulk parser over C strings: a NUL ends what it looks at);
- :class:`Debugger` keeps what ``struct ldbState`` keeps (breakpoints, step, the source's
  lines, the current line, maxlen, the log), is the script's line hook (``luaLdbLineHook``:
  where it stops and why), and answers the debugger's commands (``ldbRepl``) with Redis's
  texts: each answer is an array of status lines, as ``ldbSendLogs`` writes it;
- the ``redis.call`` wrapper logs ``<redis>``, ``<error>`` and ``<reply>`` lines while the
  session steps, as ``luaRedisGenericCommand`` does with ``ldb.step`` set.

The hook runs in the script's thread, inside Lua's line hook (so Lua runs no other hook
meanwhile, as in Redis: what ``eval`` runs is not stepped).
"""

from __future__ import annotations

import struct
import time
import weakref
from collections.abc import Callable
from typing import Any

import lupa.lua51 as lua

#: Redis's limits: breakpoints, the default length of logged replies and values, how deep
#: a value is shown (LUA_MINSTACK / 2), the arguments a command line may have.
BREAKPOINTS_MAX = 64
MAXLEN_DEFAULT = 256
_VALUES_DEPTH = 10
_ARGS_MAX = 1024
#: Past this many bytes of unparsed input the script stops (``ldbRepl``'s 1 MB).
_BUFFER_MAX = 1 << 20
_PROTOCOL_ERROR = b"protocol error"

HELP = [
    "Redis Lua debugger help:",
    "[h]elp               Show this help.",
    "[s]tep               Run current line and stop again.",
    "[n]ext               Alias for step.",
    "[c]ontinue           Run till next breakpoint.",
    "[l]ist               List source code around current line.",
    "[l]ist [line]        List source code around [line].",
    "                     line = 0 means: current position.",
    "[l]ist [line] [ctx]  In this form [ctx] specifies how many lines",
    "                     to show before/after [line].",
    "[w]hole              List all source code. Alias for 'list 1 1000000'.",
    "[p]rint              Show all the local variables.",
    "[p]rint <var>        Show the value of the specified variable.",
    "                     Can also show global vars KEYS and ARGV.",
    "[b]reak              Show all breakpoints.",
    "[b]reak <line>       Add a breakpoint to the specified line.",
    "[b]reak -<line>      Remove breakpoint from the specified line.",
    "[b]reak 0            Remove all breakpoints.",
    "[t]race              Show a backtrace.",
    "[e]val <code>        Execute some Lua code (in a different callframe).",
    "[r]edis <cmd>        Execute a Redis command.",
    "[m]axlen [len]       Trim logged Redis replies and Lua var dumps to len.",
    "                     Specifying zero as <len> means unlimited.",
    "[a]bort              Stop the execution of the script. In sync",
    "                     mode dataset changes will be retained.",
    "",
    "Debugger functions you can call from Lua scripts:",
    "redis.debug()        Produce logs in the debugger console.",
    "redis.breakpoint()   Stop execution like if there was a breakpoint in the",
    "                     next line of code.",
]
_UNKNOWN = b"<error> Unknown Redis Lua debugger command or wrong number of arguments."


# -- the protocol ------------------------------------------------------------------------


def _c_find(buffer: bytes, start: int, needle: bytes) -> int:
    """``strstr``/``strchr`` from ``start``: where C would find ``needle``, a NUL ending the
    string it searches; -1 if it would not."""
    end = buffer.find(b"\0", start)
    return buffer.find(needle, start, len(buffer) if end < 0 else end)


def _atoi(buffer: bytes, start: int) -> int:
    """C's ``atoi`` of the text at ``start``: blanks, a sign, digits, whatever follows."""
    pos, size = start, len(buffer)
    while pos < size and buffer[pos] in b" \t\n\v\f\r":
        pos += 1
    sign = 1
    if pos < size and buffer[pos] in b"+-":
        sign = -1 if buffer[pos] == 0x2D else 1
        pos += 1
    value = 0
    while pos < size and 0x30 <= buffer[pos] <= 0x39:
        value = value * 10 + buffer[pos] - 0x30
        pos += 1
    value *= sign
    # an int, as C keeps it
    return (value + 2**31) % 2**32 - 2**31


def parse_command(buffer: bytes) -> list[bytes] | bytes | None:
    """One debugger command line from the client's raw input, as ``ldbReplParseCommand``
    reads it: the arguments; None while more input is needed; ``protocol error`` for input
    it refuses (the script then stops with that error)."""
    if not buffer:
        return None
    star = _c_find(buffer, 0, b"*")
    if star < 0:
        return _PROTOCOL_ERROR
    line_end = _c_find(buffer, star, b"\r\n")
    if line_end < 0:
        return None
    count = _atoi(buffer[:line_end], star + 1)
    if count <= 0 or count > _ARGS_MAX:
        return _PROTOCOL_ERROR
    pos = line_end + 2
    argv: list[bytes] = []
    while len(argv) < count:
        if pos >= len(buffer) or buffer[pos] == 0:
            return None
        if buffer[pos] != 0x24:  # '$'
            return _PROTOCOL_ERROR
        line_end = _c_find(buffer, pos, b"\r\n")
        if line_end < 0:
            return None
        size = _atoi(buffer[:line_end], pos + 1)
        if size <= 0 or size > _ARGS_MAX:
            return _PROTOCOL_ERROR
        pos = line_end + 2
        if pos + size + 2 > len(buffer):
            return None
        argv.append(buffer[pos : pos + size])
        pos += size
        if buffer[pos : pos + 2] != b"\r\n":
            return _PROTOCOL_ERROR
        pos += 2
    return argv


def encode_logs(lines: list[bytes]) -> bytes:
    """``ldbSendLogs``: the lines as an array of status replies, CR and LF as spaces."""
    out = [b"*%d\r\n" % len(lines)]
    for line in lines:
        out.append(b"+" + line.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n")
    return b"".join(out)


# -- values and replies as the debugger shows them ------------------------------------------

_REPR_ESCAPES = {
    0x5C: b"\\\\",
    0x22: b'\\"',
    0x0A: b"\\n",
    0x0D: b"\\r",
    0x09: b"\\t",
    0x07: b"\\a",
    0x08: b"\\b",
}


def repr_bytes(data: bytes) -> bytes:
    """``sdscatrepr``: the bytes quoted, escaped as C escapes them."""
    out = bytearray(b'"')
    for byte in data:
        escaped = _REPR_ESCAPES.get(byte)
        if escaped is not None:
            out += escaped
        elif 0x20 <= byte < 0x7F:
            out.append(byte)
        else:
            out += b"\\x%02x" % byte
    out += b'"'
    return bytes(out)


def _resp_line(reply: bytes, pos: int) -> tuple[bytes, int]:
    end = reply.find(b"\r\n", pos)
    if end < 0:
        return reply[pos:], len(reply)
    return reply[pos:end], end + 2


def reply_to_human(reply: bytes, pos: int = 0) -> tuple[bytes, int]:
    """``ldbRedisProtocolToHuman``: one reply from ``pos`` in the debugger's words, and
    where the next one starts (the kinds Redis does not name add nothing)."""
    if pos >= len(reply):
        return b"", pos
    kind = reply[pos : pos + 1]
    line, after = _resp_line(reply, pos + 1)
    if kind == b":":
        return line, after
    if kind == b"$":
        size = int(line)
        if size < 0:
            return b"NULL", after
        return repr_bytes(reply[after : after + size]), after + size + 2
    if kind in (b"+", b"-"):
        return repr_bytes(reply[pos : after - 2]), after
    if kind in (b"*", b"~", b"%"):
        count = int(line)
        if count < 0:
            return b"NULL", after
        items = []
        for _ in range(count):
            if kind == b"%":
                key, after = reply_to_human(reply, after)
                value, after = reply_to_human(reply, after)
                items.append(key + b" => " + value)
            else:
                item, after = reply_to_human(reply, after)
                items.append(item)
        opening, closing = {b"*": (b"[", b"]"), b"~": (b"~(", b")"), b"%": (b"{", b"}")}[kind]
        return opening + b",".join(items) + closing, after
    if kind == b"_":
        return b"(null)", after
    if kind == b"#":
        return (b"#true" if line == b"t" else b"#false"), after
    if kind == b",":
        return b"(double) " + line, after
    return b"", pos


# -- the Lua side ----------------------------------------------------------------------------

#: Installed once per interpreter: the line hook, and what the commands ask of Lua's stack.
#: Frames of the script are those compiled as ``@user_script`` (the others are the
#: sandbox's own Lua, where Redis has C).
_LUA = r"""
local py = ...
local getinfo, getlocal, sethook, gethook = debug.getinfo, debug.getlocal, debug.sethook,
  debug.gethook
local setfenv, getfenv, loadstring, pcall, tostring, ipairs = setfenv, getfenv, loadstring, pcall,
  tostring, ipairs
local USER = '@user_script'
local line_event = py.line_event

local function hook()
  local info = getinfo(2, 'Sl')
  if info.source ~= USER then return end
  local problem = line_event(info.currentline)
  if problem then error(problem, 0) end
end

local saved
local function install()
  saved = {gethook()}
  sethook(hook, 'l', 100000)
end
local function uninstall()
  sethook(saved[1], saved[2], saved[3])
end

-- The script's frames, innermost first: their levels as the caller of frames() sees them.
local function frames()
  local found, level = {}, 3
  while true do
    local info = getinfo(level, 'Snl')
    if not info then return found end
    if info.source == USER then found[#found + 1] = {level = level - 1, info = info} end
    level = level + 1
  end
end

-- ldbPrintAll: the current frame's locals (names and values, with their count).
local function locals()
  local names, values, count = {}, {}, 0
  local level = frames()[1]
  if not level then return names, values, 0 end
  level = level.level
  while true do
    local name, value = getlocal(level, count + 1)
    if name == nil then break end
    count = count + 1
    names[count], values[count] = name, value
  end
  return names, values, count
end

-- ldbPrint: the first local of that name from the current frame outwards.
local function find_local(wanted)
  for _, frame in ipairs(frames()) do
    local i = 1
    while true do
      local name, value = getlocal(frame.level, i)
      if name == nil then break end
      if name == wanted then return true, value end
      i = i + 1
    end
  end
  return false
end

-- ldbTrace: each frame's function name (nil at the top) and line.
local function trace()
  local names, lines, count = {}, {}, 0
  for _, frame in ipairs(frames()) do
    count = count + 1
    names[count], lines[count] = frame.info.name, frame.info.currentline
  end
  return names, lines, count
end

-- ldbEval: an expression, else a statement, in the script's globals; its first value.
local function first(ok, value) return ok, value end
local function evaluate(code, env)
  local f, e = loadstring('return ' .. code, '@ldb_eval')
  if not f then
    f, e = loadstring(code, '@ldb_eval')
    if not f then return false, e end
  end
  setfenv(f, env)
  return first(pcall(f))
end

local function address(value) return (tostring(value):match(': (.*)$')) or '' end

return install, uninstall, locals, find_local, trace, evaluate, address, getfenv
"""


class LuaSide:
    """The debugger's Lua helpers in one interpreter (made once, kept with the engine)."""

    def __init__(self, engine: Any) -> None:
        self.hook_target: Callable[[int], bytes | None] = lambda _line: None
        py = engine.runtime.table_from({b"line_event": self._line_event})
        (
            self.install,
            self.uninstall,
            self.locals,
            self.find_local,
            self.trace,
            self.evaluate,
            self.address,
            self.getfenv,
        ) = engine.runtime.execute(_LUA, py)

    def _line_event(self, line: int) -> bytes | None:
        return self.hook_target(int(line))


_SIDES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def lua_side(engine: Any) -> LuaSide:
    """The interpreter's helpers, installed the first time a session needs them."""
    side = _SIDES.get(engine)
    if side is None:
        side = _SIDES[engine] = LuaSide(engine)
    return side


# -- the session's state and commands -------------------------------------------------------


class Debugger:
    """One debugging session: ``struct ldbState`` and the commands of ``ldbRepl``.

    ``wait_input()`` blocks until more of the client's bytes came (returns them), or None
    once the client is gone; ``write(bytes)`` sends bytes to the client."""

    def __init__(
        self,
        body: bytes,
        wait_input: Callable[[], bytes | None],
        write: Callable[[bytes], None],
        time_limit_ms: Callable[[], int],
    ) -> None:
        source = body.rstrip(b"\r\n")
        self.lines = source.split(b"\n")
        self.wait_input = wait_input
        self.write = write
        self.time_limit_ms = time_limit_ms
        self.logs: list[bytes] = []
        #: The breakpoints as Redis keeps them: C ints (``ldbDelBreakpoint`` moves bytes
        #: where it means ints, and so does this).
        self.bp = bytearray(4 * BREAKPOINTS_MAX)
        self.bpcount = 0
        self.step = True
        self.luabp = False
        self.currentline = -1
        self.buffer = b""
        self.maxlen = MAXLEN_DEFAULT
        self.maxlen_hint_sent = False
        self.started = time.monotonic()
        #: Given by :meth:`attach` when the script starts.
        self.side: Any = None
        self.env: Any = None
        self.inner_call: Callable[[list[bytes], int], bytes] = _no_call
        self.checked: Callable[[list[bytes]], Any] = _no_call
        self.resp: Callable[[], int] = lambda: 2

    def attach(
        self,
        side: LuaSide,
        env: Any,
        inner_call: Callable[[list[bytes], int], bytes],
        checked: Callable[[list[bytes]], Any],
        resp: Callable[[], int],
    ) -> None:
        """The script is about to run: the interpreter's helpers, the script's globals,
        the ``redis.call`` below the log, what refuses a command before it runs, and the
        RESP version the script asks replies in."""
        self.side, self.env = side, env
        self.inner_call, self.checked, self.resp = inner_call, checked, resp
        self.started = time.monotonic()

    # -- the log ---------------------------------------------------------------------------

    def log(self, line: bytes) -> None:
        self.logs.append(line)

    def log_with_maxlen(self, line: bytes) -> None:
        """``ldbLogWithMaxLen``: trimmed past maxlen, with a hint the first time."""
        trimmed = False
        if self.maxlen and len(line) > self.maxlen:
            line = line[: self.maxlen] + b" ..."
            trimmed = True
        self.log(line)
        if trimmed and not self.maxlen_hint_sent:
            self.maxlen_hint_sent = True
            self.log(b"<hint> The above reply was trimmed. Use 'maxlen 0' to disable trimming.")

    def send_logs(self) -> None:
        logs, self.logs = self.logs, []
        self.write(encode_logs(logs))

    # -- breakpoints -----------------------------------------------------------------------

    def breakpoints(self) -> list[int]:
        return list(struct.unpack_from(f"<{self.bpcount}i", self.bp))

    def is_breakpoint(self, line: int) -> bool:
        return line in self.breakpoints()

    def _add_breakpoint(self, line: int) -> bool:
        if line <= 0 or line > len(self.lines):
            return False
        if not self.is_breakpoint(line) and self.bpcount != BREAKPOINTS_MAX:
            struct.pack_into("<i", self.bp, 4 * self.bpcount, line)
            self.bpcount += 1
            return True
        return False

    def _delete_breakpoint(self, line: int) -> bool:
        for index, each in enumerate(self.breakpoints()):
            if each == line:
                self.bpcount -= 1
                moved = self.bpcount - index  # bytes, as Redis's memmove has it
                start = 4 * (index + 1)
                self.bp[4 * index : 4 * index + moved] = self.bp[start : start + moved]
                return True
        return False

    # -- source lines ----------------------------------------------------------------------

    def source_line(self, number: int) -> bytes:
        if 1 <= number <= len(self.lines):
            return self.lines[number - 1]
        return b"<out of range source code line>"

    def log_source_line(self, number: int) -> None:
        """``ldbLogSourceLine``: the line with its marks (current ``->``, breakpoint ``#``)."""
        current = number == self.currentline
        bp = self.is_breakpoint(number)
        prefix = b"->#" if current and bp else b"-> " if current else b"  #" if bp else b"   "
        self.log(b"%s%-3d %s" % (prefix, number, self.source_line(number)))

    def list_lines(self, around: int, context: int) -> None:
        for number in range(1, len(self.lines) + 1):
            if around != 0 and abs(around - number) > context:
                continue
            self.log_source_line(number)

    # -- Lua values ------------------------------------------------------------------------

    def value_repr(self, value: Any, level: int = 0) -> bytes:
        """``ldbCatStackValueRec``: a Lua value as the debugger shows it."""
        if level == _VALUES_DEPTH:
            return b"<max recursion level reached! Nested table?>"
        level += 1
        kind = value.__class__
        if kind is bytes:
            return repr_bytes(value)
        if kind is bool:
            return b"true" if value else b"false"
        if kind is int or kind is float:
            return b"%g" % float(value)
        if value is None:
            return b"nil"
        lua_kind = lua.lua_type(value)
        if lua_kind == "table":
            expected = 1
            is_array = True
            as_array: list[bytes] = []
            as_map: list[bytes] = []
            for key, item in value.items():
                if is_array and (key.__class__ not in (int, float) or key != expected):
                    is_array = False  # (a boolean key's class is bool: no number)
                shown = self.value_repr(item, level)
                as_array.append(shown)
                as_map.append(b"[" + self.value_repr(key, level) + b"]=" + shown)
                expected += 1
            return b"{" + b"; ".join(as_array if is_array else as_map) + b"}"
        if lua_kind in ("function", "userdata", "thread"):
            return b'"%s@%s"' % (lua_kind.encode(), self.side.address(value))
        # a Python object the sandbox gave Lua (redis.call ...): a function to a script
        kind_name = b"function" if callable(value) else b"userdata"
        return b'"%s@0x%x"' % (kind_name, id(value))

    # -- the line hook ---------------------------------------------------------------------

    def line_event(self, line: int) -> bytes | None:
        """``luaLdbLineHook``: stop here when stepping, at a breakpoint, after
        ``redis.breakpoint()``, or when the script ran past the time limit since the last
        stop; an error text stops the script instead (abort, protocol error ...)."""
        self.currentline = line
        bp = self.is_breakpoint(line) or self.luabp
        timeout = False
        # Redis looks at the time on count events only; here the hook is Lua, and the
        # instructions it runs itself use up Lua's count, so a loop's line events are
        # where the time is looked at too
        if not self.step and not bp:
            elapsed_ms = (time.monotonic() - self.started) * 1000
            limit = self.time_limit_ms() or 5000
            if elapsed_ms < limit:
                return None
            timeout = True
            self.step = True
        if bp:
            reason = b"redis.breakpoint() called" if self.luabp else b"break point"
        elif timeout:
            reason = b"timeout reached, infinite loop?"
        else:
            reason = b"step over"
        self.step = False
        self.luabp = False
        self.log(b"* Stopped at %d, stop reason = %s" % (line, reason))
        self.log_source_line(line)
        self.send_logs()
        outcome = self.repl()
        if outcome is False and timeout:
            return b"timeout during Lua debugging with client closing connection"
        self.started = time.monotonic()
        return outcome or None

    def breakpoint(self) -> bool:
        """``redis.breakpoint()``: stop at the next line."""
        self.luabp = True
        return True

    def debug(self, *values: Any) -> None:
        """``redis.debug(...)``: the values, logged with the current line."""
        shown = b", ".join(self.value_repr(value) for value in values)
        self.log(b"<debug> line %d: %s" % (self.currentline, shown))

    # -- the commands ----------------------------------------------------------------------

    def _next_command(self) -> list[bytes] | bytes | bool:
        """The client's next command line; an error text that stops the script; False once
        the client is gone (the script then runs on without stopping)."""
        while True:
            parsed = parse_command(self.buffer)
            if parsed.__class__ is list:
                self.buffer = b""
                return parsed
            if parsed is not None:
                return parsed
            more = self.wait_input()
            if more is None:
                self.step = False
                self.bpcount = 0
                return False
            self.buffer += more
            if len(self.buffer) > _BUFFER_MAX:
                self.buffer = b""
                return b"max client buffer reached"

    def repl(self) -> bytes | bool | None:
        """``ldbRepl``: answer commands until one goes back to the script. None: go on;
        False: the client is gone; bytes: stop the script with that error."""
        while True:
            argv = self._next_command()
            if argv.__class__ is not list:
                return argv
            name = argv[0].lower()
            if name in (b"s", b"step", b"n", b"next"):
                self.step = True
                return None
            if name in (b"c", b"continue"):
                return None
            if name in (b"a", b"abort"):
                return b"script aborted for user request"
            self._command(name, argv)
            self.send_logs()

    def _command(self, name: bytes, argv: list[bytes]) -> None:
        if name in (b"h", b"help"):
            for line in HELP:
                self.log(line.encode())
        elif name in (b"t", b"trace"):
            self._trace()
        elif name in (b"m", b"maxlen"):
            self._maxlen(argv)
        elif name in (b"b", b"break"):
            self._break(argv)
        elif name in (b"e", b"eval"):
            self._eval(argv)
        elif len(argv) > 1 and name in (b"r", b"redis"):
            self.redis_command(argv[1:])
        elif name in (b"p", b"print"):
            if len(argv) == 2:
                self._print(argv[1])
            else:
                self._print_all()
        elif name in (b"l", b"list"):
            around, context = self.currentline, 5
            if len(argv) > 1:
                number = _atoi(argv[1], 0)
                if number > 0:
                    around = number
            if len(argv) > 2:
                context = _atoi(argv[2], 0)
            self.list_lines(around, context)
        elif name in (b"w", b"whole"):
            self.list_lines(1, 1000000)
        else:
            self.log(_UNKNOWN)

    def _trace(self) -> None:
        names, lines, count = self.side.trace()
        for index in range(1, count + 1):
            function = names[index]
            where = b"In" if index == 1 else b"From"
            self.log(b"%s %s:" % (where, function if function is not None else b"top level"))
            self.log_source_line(int(lines[index]))
        if count == 0:
            self.log(b"<error> Can't retrieve Lua stack.")

    def _maxlen(self, argv: list[bytes]) -> None:
        if len(argv) == 2:
            value = _atoi(argv[1], 0)
            self.maxlen_hint_sent = True
            if value != 0 and value <= 60:
                value = 60
            self.maxlen = value
        if self.maxlen:
            self.log(b"<value> replies are truncated at %d bytes." % self.maxlen)
        else:
            self.log(b"<value> replies are unlimited.")

    def _break(self, argv: list[bytes]) -> None:
        if len(argv) == 1:
            if self.bpcount == 0:
                self.log(b"No breakpoints set. Use 'b <line>' to add one.")
                return
            self.log(b"%d breakpoints set:" % self.bpcount)
            for line in self.breakpoints():
                self.log_source_line(line)
            return
        for arg in argv[1:]:
            line = _strict_long(arg)
            if line is None:
                self.log(b"Invalid argument:'%s'" % arg.split(b"\0", 1)[0])
            elif line == 0:
                self.bpcount = 0
                self.log(b"All breakpoints removed.")
            elif line > 0:
                if self.bpcount == BREAKPOINTS_MAX:
                    self.log(b"Too many breakpoints set.")
                elif self._add_breakpoint(line):
                    self.list_lines(line, 1)
                else:
                    self.log(b"Wrong line number.")
            elif self._delete_breakpoint(-line):
                self.log(b"Breakpoint removed.")
            else:
                self.log(b"No breakpoint in the specified line.")

    def _eval(self, argv: list[bytes]) -> None:
        ok, value = self.side.evaluate(b" ".join(argv[1:]), self.env)
        if not ok:
            self.log(b"<error> %s" % _lua_text(value))
            return
        self.log_with_maxlen(b"<retval> " + self.value_repr(value))

    def _print(self, name: bytes) -> None:
        found = self.side.find_local(name)
        if found.__class__ is tuple and found[0]:
            self.log_with_maxlen(b"<value> " + self.value_repr(found[1]))
        elif name in (b"KEYS", b"ARGV"):
            self.log_with_maxlen(b"<value> " + self.value_repr(self.env[name]))
        else:
            self.log(b"No such variable.")

    def _print_all(self) -> None:
        names, values, count = self.side.locals()
        shown = 0
        for index in range(1, count + 1):
            name = names[index]
            if b"(*temporary)" in name:
                continue
            self.log_with_maxlen(b"<value> %s = %s" % (name, self.value_repr(values[index])))
            shown += 1
        if not shown:
            self.log(b"No local variables in the current context.")

    # -- Redis commands ----------------------------------------------------------------------

    def redis_command(self, argv: list[bytes]) -> None:
        """``ldbRedis``: the command as the script's ``redis.call`` would run it, logged
        whatever the step; its error stays here."""
        saved, self.step = self.step, True
        try:
            self.call(argv, self.resp())
        finally:
            self.step = saved

    def call(self, argv: list[bytes], resp: int) -> bytes:
        """The script's ``redis.call`` while it is debugged: while it steps, the command,
        its refusal or its reply go to the log."""
        if not self.step:
            return self.inner_call(argv, resp)
        shown = [b"<redis>"]
        for index, arg in enumerate(argv):
            if index == 10:
                shown.append(b" ... (%d more)" % (len(argv) - index - 1))
                break
            shown.append(b" " + arg)
        self.log(b"".join(shown))
        refusal = self.checked(argv)
        reply = self.inner_call(argv, resp)
        if refusal.__class__ is bytes:
            text = refusal[1 : refusal.index(b"\r\n")]
            self.log(b"<error> " + (text[4:] if text.startswith(b"ERR ") else text))
            return reply
        if reply[:1] == b"-":
            self.log(b"<error> " + reply[: reply.index(b"\r\n")])
        self.log_with_maxlen(b"<reply> " + reply_to_human(reply)[0])
        return reply


def _no_call(*_args: Any) -> Any:
    raise RuntimeError("the debugger ran before its script started")


def _strict_long(text: bytes) -> int | None:
    """``string2l``: a whole decimal number, no blanks, no plus, no leading zeros."""
    body = text[1:] if text[:1] == b"-" else text
    if not body or not body.isdigit() or (len(body) > 1 and body[:1] == b"0"):
        return None
    if text == b"-0":
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def _lua_text(value: Any) -> bytes:
    """``lua_tostring`` of an error value (a number as Lua writes it). Redis 7.0 crashes on
    an error that is no string (``redis.call``'s error table, ``error({err=...})``): here
    it is shown by its text."""
    if value.__class__ is bytes:
        return value
    if value.__class__ in (int, float):
        return b"%.14g" % value
    text = getattr(value, "text", None)  # a command's error (CallError) raised in Python
    if text.__class__ is bytes:
        return text
    if lua.lua_type(value) == "table" and value[b"err"] is not None:
        return value[b"err"]
    return b"(null)"
