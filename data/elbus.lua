-- SPDX-License-Identifier: MIT
--
-- Wireshark dissector for the pcap captures of elbus-monitor --pcap
-- (elbus-glib). Load it with
--
--   wireshark -X lua_script:/usr/share/elbus-glib/wireshark/elbus.lua bus.pcap
--   tshark -X lua_script:elbus.lua -r bus.pcap -V
--
-- or copy it to ~/.local/lib/wireshark/plugins/ to have it always.
--
-- The capture: classic pcap, little-endian, nanosecond timestamps (magic
-- 0xa1b23c4d), link type LINKTYPE_USER0 (147, DLT_USER0). Each record is
--
--   offset  size  field (integers little-endian)
--   0       1     metadata version, 1
--   1       1     kind: 1 message, 2 broadcast, 3 publish, 4 subscribe,
--                 5 unsubscribe, 6 reg, 7 unreg
--   2       1     QoS (0 no, 1 processed, 2 realtime, 3 realtime-processed)
--   3       1     result byte (0x01 OK, 0x71 not registered, ...)
--   4       4     recipients
--   8       4     the payload's full length
--   12      2     sender length S
--   14      2     frame offset F (16 + S in version 1; skip to it)
--   16      S     the sender's name, UTF-8, no terminator
--   F       ...   the frame as the sender wrote it to the broker (elbus
--                 protocol section 2): u32 operation id (always 0: the
--                 broker does not report it), one byte op | QoS << 6,
--                 u32 body length, the body (message, broadcast: TARGET 00
--                 PAYLOAD; publish: TOPIC 00 PAYLOAD; subscribe,
--                 unsubscribe: masks separated by 00). reg and unreg
--                 records end after the sender.
--
-- A payload cut short by elbus-monitor --max-payload (or by the 256 KiB
-- snapshot length) is a record whose captured length is below its
-- original length; the body length field keeps the full size.

local elbus = Proto("elbus", "elbus message bus (elbus-monitor capture)")

local kinds = {
  [1] = "message", [2] = "broadcast", [3] = "publish", [4] = "subscribe",
  [5] = "unsubscribe", [6] = "reg", [7] = "unreg",
}
local qos_names = {
  [0] = "no", [1] = "processed", [2] = "realtime", [3] = "realtime-processed",
}
local results = {
  [0x01] = "OK", [0x71] = "not registered", [0x72] = "data", [0x73] = "io",
  [0x74] = "other", [0x75] = "not supported", [0x76] = "busy",
  [0x77] = "not delivered", [0x78] = "timeout", [0x79] = "access denied",
}
local ops = {
  [0x00] = "ping", [0x01] = "publish", [0x02] = "subscribe", [0x03] = "unsubscribe",
  [0x12] = "message", [0x13] = "broadcast",
}
local rpc_types = {
  [0x00] = "notification", [0x01] = "request", [0x11] = "reply", [0x12] = "error",
}

local f = elbus.fields
f.version = ProtoField.uint8("elbus.meta.version", "Metadata version")
f.kind = ProtoField.uint8("elbus.kind", "Kind", base.DEC, kinds)
f.qos = ProtoField.uint8("elbus.qos", "QoS", base.DEC, qos_names)
f.result = ProtoField.uint8("elbus.result", "Result", base.HEX, results)
f.recipients = ProtoField.uint32("elbus.recipients", "Recipients")
f.size = ProtoField.uint32("elbus.size", "Payload length")
f.sender_len = ProtoField.uint16("elbus.sender_len", "Sender length")
f.frame_offset = ProtoField.uint16("elbus.frame_offset", "Frame offset")
f.sender = ProtoField.string("elbus.sender", "Sender", base.UNICODE)
f.op_id = ProtoField.uint32("elbus.op_id", "Operation id")
f.op = ProtoField.uint8("elbus.op", "Operation", base.HEX, ops, 0x3f)
f.frame_qos = ProtoField.uint8("elbus.frame_qos", "QoS", base.DEC, qos_names, 0xc0)
f.body_len = ProtoField.uint32("elbus.body_len", "Body length")
f.target = ProtoField.string("elbus.target", "Target", base.UNICODE)
f.mask = ProtoField.string("elbus.mask", "Mask", base.UNICODE)
f.topic = ProtoField.string("elbus.topic", "Topic", base.UNICODE)
f.payload = ProtoField.bytes("elbus.payload", "Payload")
f.truncated = ProtoField.uint32("elbus.truncated", "Bytes not captured")
f.value = ProtoField.string("elbus.value", "Value", base.UNICODE)
f.rpc_type = ProtoField.uint8("elbus.rpc.type", "RPC type", base.HEX, rpc_types)
f.rpc_id = ProtoField.uint32("elbus.rpc.id", "Call id")
f.rpc_method = ProtoField.string("elbus.rpc.method", "Method", base.UNICODE)
f.rpc_code = ProtoField.int16("elbus.rpc.code", "Error code")
f.rpc_data = ProtoField.bytes("elbus.rpc.data", "Data")

local ef_short = ProtoExpert.new("elbus.short", "Record shorter than its header says",
                                 expert.group.MALFORMED, expert.severity.ERROR)
local ef_truncated = ProtoExpert.new("elbus.truncated.expert", "Payload not captured in full",
                                     expert.group.UNDECODED, expert.severity.NOTE)
elbus.experts = { ef_short, ef_truncated }

-- ---- MessagePack, as compact JSON -------------------------------------

local function json_string(s)
  s = s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r',
                    ['\t'] = '\\t' }
    return named[c] or string.format("\\u%04x", c:byte())
  end)
  return '"' .. s .. '"'
end

local mp_value

-- n elements (pairs for a map) from off; returns the JSON text and the
-- offset after them, or nil
local function mp_container(tvb, off, limit, n, map, depth)
  local parts = {}
  for _ = 1, n do
    local key, value
    if map then
      key, off = mp_value(tvb, off, limit, depth + 1)
      if key == nil then return nil end
      if key:sub(1, 1) ~= '"' then key = json_string(key) end
    end
    value, off = mp_value(tvb, off, limit, depth + 1)
    if value == nil then return nil end
    parts[#parts + 1] = map and (key .. ":" .. value) or value
  end
  if map then return "{" .. table.concat(parts, ",") .. "}", off end
  return "[" .. table.concat(parts, ",") .. "]", off
end

-- one value at off (MessagePack is big-endian); returns the JSON text and
-- the offset after it, or nil when the bytes are not MessagePack
mp_value = function(tvb, off, limit, depth)
  if depth > 32 or off >= limit then return nil end
  local b = tvb(off, 1):uint()
  local function need(n) return off + 1 + n <= limit end
  local function str(len_size)
    if not need(len_size) then return nil end
    local n = len_size == 0 and bit32.band(b, 0x1f) or tvb(off + 1, len_size):uint()
    local start = off + 1 + len_size
    if start + n > limit then return nil end
    if n == 0 then return '""', start end
    return json_string(tvb(start, n):string(ENC_UTF_8)), start + n
  end
  local function bin(len_size)
    if not need(len_size) then return nil end
    local n = tvb(off + 1, len_size):uint()
    local start = off + 1 + len_size
    if start + n > limit then return nil end
    local bytes = {}
    for i = 0, n - 1 do bytes[#bytes + 1] = tostring(tvb(start + i, 1):uint()) end
    return "[" .. table.concat(bytes, ",") .. "]", start + n
  end
  local function num(size, signed, float)
    if not need(size) then return nil end
    local r = tvb(off + 1, size)
    local v
    if float then v = string.format("%.17g", r:float())
    elseif size == 8 then v = tostring(signed and r:int64() or r:uint64())
    else v = tostring(signed and r:int() or r:uint()) end
    return v, off + 1 + size
  end

  if b <= 0x7f then return tostring(b), off + 1 end
  if b >= 0xe0 then return tostring(b - 0x100), off + 1 end
  if b <= 0x8f then return mp_container(tvb, off + 1, limit, b - 0x80, true, depth) end
  if b <= 0x9f then return mp_container(tvb, off + 1, limit, b - 0x90, false, depth) end
  if b <= 0xbf then return str(0) end
  if b == 0xc0 then return "null", off + 1 end
  if b == 0xc2 then return "false", off + 1 end
  if b == 0xc3 then return "true", off + 1 end
  if b == 0xc4 then return bin(1) end
  if b == 0xc5 then return bin(2) end
  if b == 0xc6 then return bin(4) end
  if b == 0xca then return num(4, false, true) end
  if b == 0xcb then return num(8, false, true) end
  if b >= 0xcc and b <= 0xcf then return num(2 ^ (b - 0xcc), false) end
  if b >= 0xd0 and b <= 0xd3 then return num(2 ^ (b - 0xd0), true) end
  if b == 0xd9 then return str(1) end
  if b == 0xda then return str(2) end
  if b == 0xdb then return str(4) end
  if b == 0xdc or b == 0xdd then
    local size = b == 0xdc and 2 or 4
    if not need(size) then return nil end
    return mp_container(tvb, off + 1 + size, limit, tvb(off + 1, size):uint(), false, depth)
  end
  if b == 0xde or b == 0xdf then
    local size = b == 0xde and 2 or 4
    if not need(size) then return nil end
    return mp_container(tvb, off + 1 + size, limit, tvb(off + 1, size):uint(), true, depth)
  end
  return nil   -- 0xc1 and the extension types
end

-- ---- payloads ------------------------------------------------------------

-- UTF-8 (checked by hand: Wireshark's Lua 5.2 has no utf8 library)
local function is_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local extra
    if c < 0x80 then extra = 0
    elseif c >= 0xc2 and c <= 0xdf then extra = 1
    elseif c >= 0xe0 and c <= 0xef then extra = 2
    elseif c >= 0xf0 and c <= 0xf4 then extra = 3
    else return false end
    if i + extra > n then return false end
    for j = i + 1, i + extra do
      local cc = s:byte(j)
      if cc < 0x80 or cc > 0xbf then return false end
    end
    i = i + extra + 1
  end
  return true
end

-- UTF-8 without control characters other than tab, newline, return
local function is_printable(s)
  return not s:find("[%z\1-\8\11\12\14-\31]") and is_utf8(s)
end

-- Shows the bytes [off, off + len) of tvb as the tools do: printable text
-- as text, else MessagePack as JSON; returns a short summary for the Info
-- column.
local function add_value(tree, tvb, off, len)
  if len <= 0 then return "" end
  local range = tvb(off, len)
  local raw = range:raw()
  if is_printable(raw) then
    tree:add(f.value, range, raw)
    return raw
  end
  local text, after = mp_value(tvb, off, off + len, 0)
  if text ~= nil and after == off + len then
    tree:add(f.value, range, text):append_text(" (MessagePack)")
    return text
  end
  return "0x" .. range:bytes():tohex():lower()
end

local function shorten(s)
  s = s:gsub("[\r\n\t]", " ")
  if #s > 80 then s = s:sub(1, 77) .. "..." end
  return s
end

-- RPC (elbus protocol section 8) inside a message payload
local function dissect_rpc(tree, tvb, off, len)
  if len < 1 then return nil end
  local t = tvb(off, 1):uint()
  local sub
  if t == 0x00 then
    sub = tree:add(elbus, tvb(off, len), "RPC notification")
    sub:add(f.rpc_type, tvb(off, 1))
    return "notify " .. shorten(add_value(sub, tvb, off + 1, len - 1))
  elseif t == 0x01 and len >= 6 then
    local nul
    for i = off + 5, off + len - 1 do
      if tvb(i, 1):uint() == 0 then nul = i break end
    end
    if nul == nil then return nil end
    local id = tvb(off + 1, 4):le_uint()
    local method = tvb(off + 5, nul - off - 5):string(ENC_UTF_8)
    sub = tree:add(elbus, tvb(off, len), "RPC request")
    sub:add(f.rpc_type, tvb(off, 1))
    sub:add_le(f.rpc_id, tvb(off + 1, 4))
    sub:add(f.rpc_method, tvb(off + 5, nul - off - 5))
    local params = shorten(add_value(sub, tvb, nul + 1, off + len - nul - 1))
    if id == 0 then return "call0 " .. method .. " " .. params end
    return "call " .. method .. " #" .. id .. " " .. params
  elseif t == 0x11 and len >= 5 then
    local id = tvb(off + 1, 4):le_uint()
    sub = tree:add(elbus, tvb(off, len), "RPC reply")
    sub:add(f.rpc_type, tvb(off, 1))
    sub:add_le(f.rpc_id, tvb(off + 1, 4))
    return "reply #" .. id .. " " .. shorten(add_value(sub, tvb, off + 5, len - 5))
  elseif t == 0x12 and len >= 7 then
    local id = tvb(off + 1, 4):le_uint()
    local code = tvb(off + 5, 2):le_int()
    sub = tree:add(elbus, tvb(off, len), "RPC error")
    sub:add(f.rpc_type, tvb(off, 1))
    sub:add_le(f.rpc_id, tvb(off + 1, 4))
    sub:add_le(f.rpc_code, tvb(off + 5, 2))
    if len > 7 then sub:add(f.rpc_data, tvb(off + 7, len - 7)) end
    return "error #" .. id .. " " .. code .. " " .. shorten(add_value(sub, tvb, off + 7, len - 7))
  end
  return nil
end

-- ---- records ---------------------------------------------------------------

function elbus.dissector(tvb, pinfo, tree)
  local captured = tvb:captured_len()
  if captured < 16 then return 0 end

  pinfo.cols.protocol = "ELBUS"
  local root = tree:add(elbus, tvb())

  local meta = root:add(elbus, tvb(0, 16), "Metadata")
  meta:add(f.version, tvb(0, 1))
  meta:add(f.kind, tvb(1, 1))
  meta:add(f.qos, tvb(2, 1))
  meta:add(f.result, tvb(3, 1))
  meta:add_le(f.recipients, tvb(4, 4))
  meta:add_le(f.size, tvb(8, 4))
  meta:add_le(f.sender_len, tvb(12, 2))
  meta:add_le(f.frame_offset, tvb(14, 2))

  local kind = tvb(1, 1):uint()
  local result = tvb(3, 1):uint()
  local sender_len = tvb(12, 2):le_uint()
  local frame = tvb(14, 2):le_uint()
  if 16 + sender_len > captured or frame > captured then
    root:add_proto_expert_info(ef_short)
    return captured
  end
  local sender = tvb(16, sender_len):string(ENC_UTF_8)
  root:add(f.sender, tvb(16, sender_len))
  pinfo.cols.src = sender

  local kind_name = kinds[kind] or ("kind " .. kind)
  local info = kind_name .. " " .. sender

  if frame + 9 <= captured then
    local fr = root:add(elbus, tvb(frame), "Frame (client to broker)")
    fr:add_le(f.op_id, tvb(frame, 4))
    fr:add(f.op, tvb(frame + 4, 1))
    fr:add(f.frame_qos, tvb(frame + 4, 1))
    fr:add_le(f.body_len, tvb(frame + 5, 4))
    local op = bit32.band(tvb(frame + 4, 1):uint(), 0x3f)
    local body = frame + 9
    local body_len = tvb(frame + 5, 4):le_uint()
    local body_end = math.min(body + body_len, captured)

    if op == 0x02 or op == 0x03 then
      local masks = {}
      local start = body
      for i = body, body_end do
        if i == body_end or tvb(i, 1):uint() == 0 then
          if i > start then
            fr:add(f.mask, tvb(start, i - start))
            masks[#masks + 1] = tvb(start, i - start):string(ENC_UTF_8)
          else
            masks[#masks + 1] = ""
          end
          start = i + 1
        end
      end
      info = info .. " → " .. table.concat(masks, ", ")
    elseif op == 0x01 or op == 0x12 or op == 0x13 then
      local nul
      for i = body, body_end - 1 do
        if tvb(i, 1):uint() == 0 then nul = i break end
      end
      if nul ~= nil then
        local dest_field = op == 0x01 and f.topic or (op == 0x13 and f.mask or f.target)
        local dest = tvb(body, nul - body):string(ENC_UTF_8)
        if nul > body then fr:add(dest_field, tvb(body, nul - body)) end
        if op ~= 0x01 then pinfo.cols.dst = dest end
        info = info .. " → " .. dest
        local p = nul + 1
        local plen = body_end - p
        if plen > 0 then
          local ptree = fr:add(f.payload, tvb(p, plen))
          local summary = op == 0x12 and dissect_rpc(ptree, tvb, p, plen) or nil
          if summary == nil then summary = shorten(add_value(ptree, tvb, p, plen)) end
          info = info .. "  " .. summary
        end
        if body + body_len > captured then
          fr:add(f.truncated, body + body_len - captured):set_generated()
          fr:add_proto_expert_info(ef_truncated)
          info = info .. " …(+" .. (body + body_len - captured) .. " bytes)"
        end
      end
    end
  end

  if result ~= 0x01 then
    info = info .. " [" .. (results[result] or string.format("0x%02x", result)) .. "]"
  end
  pinfo.cols.info = info
  root:append_text(": " .. info)
  return captured
end

-- LINKTYPE_USER0 (DLT 147), which Wireshark calls WTAP_ENCAP_USER0
local encap = (wtap_encaps and wtap_encaps.USER0) or wtap.USER0
DissectorTable.get("wtap_encap"):add(encap, elbus)
