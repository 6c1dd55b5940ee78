// SPDX-License-Identifier: MIT
//
// elbus.js: a dependency-free elbus client for web pages, over the broker's
// WebSocket transport (elbusd -B ws://HOST:PORT/PATH). The elbus byte
// stream rides in binary WebSocket messages (docs/protocol.md, section 1);
// frames, acks and the RPC layer are those of docs/protocol.md 2, 3 and 8.
//
//   import { connect } from './elbus.js';
//   const bus = await connect('ws://127.0.0.1:7778/', 'web.page1');
//   bus.onpublish = (f) => console.log(f.topic, bus.text(f.payload));
//   await bus.subscribe(['plant/#']);
//   await bus.publish('plant/ui', 'hello');
//   bus.serve('greet', (params) => 'Hello, ' + params.name);
//   const info = await bus.call('.broker', 'info');
//
// The handlers (onpublish, onbroadcast, onmessage, onnotification) get a
// frame { kind, sender, primarySender, topic, payload, realtime }, payload
// a Uint8Array. A handler that throws is reported with console.error and
// the frames after it are delivered all the same; an RPC method (serve)
// that throws answers the caller with the error (RpcError's code, else
// -32603 and the exception's message). bus.text(payload) decodes UTF-8
// and never throws: an invalid byte sequence (a binary or MessagePack
// payload) becomes U+FFFD; unpackMsgpack(payload) decodes MessagePack.

export const QoS = { NO: 0, PROCESSED: 1, REALTIME: 2, REALTIME_PROCESSED: 3 };

const OP_PUBLISH = 0x01, OP_SUBSCRIBE = 0x02, OP_UNSUBSCRIBE = 0x03;
const OP_MESSAGE = 0x12, OP_BROADCAST = 0x13;
const KIND_PING = 0x00, KIND_ACK = 0xfe;
const RPC_NOTIFICATION = 0x00, RPC_REQUEST = 0x01, RPC_REPLY = 0x11, RPC_ERROR = 0x12;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });  // MessagePack strings
const toText = new TextDecoder('utf-8');  // lenient: bad bytes become U+FFFD

// ---- MessagePack (the subset elbus payloads use; ext types are skipped) ----

export function packMsgpack(value) {
  const out = [];
  const push8 = (b) => out.push(b & 0xff);
  const pushN = (n, bytes) => { for (let i = bytes - 1; i >= 0; i--) push8(Number((BigInt(n) >> BigInt(8 * i)) & 0xffn)); };
  const pushBytes = (b) => { for (const x of b) out.push(x); };
  const enc = (v) => {
    if (v === null || v === undefined) push8(0xc0);
    else if (v === false) push8(0xc2);
    else if (v === true) push8(0xc3);
    else if (typeof v === 'number' && Number.isInteger(v) && Number.isSafeInteger(v)) {
      if (v >= 0 && v < 128) push8(v);
      else if (v < 0 && v >= -32) push8(v);
      else if (v >= 0) { push8(0xcf); pushN(v, 8); }
      else { push8(0xd3); pushN(BigInt.asUintN(64, BigInt(v)), 8); }
    } else if (typeof v === 'number') {
      const b = new DataView(new ArrayBuffer(8)); b.setFloat64(0, v);
      push8(0xcb); pushBytes(new Uint8Array(b.buffer));
    } else if (typeof v === 'bigint') { push8(v < 0n ? 0xd3 : 0xcf); pushN(BigInt.asUintN(64, v), 8); }
    else if (typeof v === 'string') {
      const s = utf8.encode(v);
      if (s.length < 32) push8(0xa0 | s.length);
      else { push8(0xdb); pushN(s.length, 4); }
      pushBytes(s);
    } else if (v instanceof Uint8Array || v instanceof ArrayBuffer) {
      const b = v instanceof ArrayBuffer ? new Uint8Array(v) : v;
      push8(0xc6); pushN(b.length, 4); pushBytes(b);
    } else if (Array.isArray(v)) {
      if (v.length < 16) push8(0x90 | v.length); else { push8(0xdd); pushN(v.length, 4); }
      v.forEach(enc);
    } else if (typeof v === 'object') {
      const keys = Object.keys(v);
      if (keys.length < 16) push8(0x80 | keys.length); else { push8(0xdf); pushN(keys.length, 4); }
      for (const k of keys) { enc(k); enc(v[k]); }
    } else throw new TypeError('cannot pack ' + typeof v);
  };
  enc(value);
  return new Uint8Array(out);
}

export function unpackMsgpack(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 0;
  const need = (n) => { if (p + n > b.length) throw new RangeError('truncated MessagePack'); };
  const u = (n) => { need(n); let v = 0n; for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(b[p++]); return v; };
  const int = (v) => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) ? Number(v) : v;
  const str = (n) => { need(n); const s = fromUtf8.decode(b.subarray(p, p + n)); p += n; return s; };
  const bin = (n) => { need(n); const s = b.slice(p, p + n); p += n; return s; };
  const arr = (n) => { const a = []; for (let i = 0; i < n; i++) a.push(dec()); return a; };
  const map = (n) => { const m = {}; for (let i = 0; i < n; i++) { const k = dec(); m[k] = dec(); } return m; };
  const ext = (n) => { need(n + 1); p += n + 1; return undefined; };
  const dec = () => {
    need(1);
    const t = b[p++];
    if (t < 0x80) return t;
    if (t >= 0xe0) return t - 0x100;
    if ((t & 0xf0) === 0x80) return map(t & 0x0f);
    if ((t & 0xf0) === 0x90) return arr(t & 0x0f);
    if ((t & 0xe0) === 0xa0) return str(t & 0x1f);
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(Number(u(1)));
      case 0xc5: return bin(Number(u(2)));
      case 0xc6: return bin(Number(u(4)));
      case 0xc7: return ext(Number(u(1)));
      case 0xc8: return ext(Number(u(2)));
      case 0xc9: return ext(Number(u(4)));
      case 0xca: { need(4); const v = dv.getFloat32(p); p += 4; return v; }
      case 0xcb: { need(8); const v = dv.getFloat64(p); p += 8; return v; }
      case 0xcc: return int(u(1));
      case 0xcd: return int(u(2));
      case 0xce: return int(u(4));
      case 0xcf: return int(u(8));
      case 0xd0: return int(BigInt.asIntN(8, u(1)));
      case 0xd1: return int(BigInt.asIntN(16, u(2)));
      case 0xd2: return int(BigInt.asIntN(32, u(4)));
      case 0xd3: return int(BigInt.asIntN(64, u(8)));
      case 0xd4: return ext(1);
      case 0xd5: return ext(2);
      case 0xd6: return ext(4);
      case 0xd7: return ext(8);
      case 0xd8: return ext(16);
      case 0xd9: return str(Number(u(1)));
      case 0xda: return str(Number(u(2)));
      case 0xdb: return str(Number(u(4)));
      case 0xdc: return arr(Number(u(2)));
      case 0xdd: return arr(Number(u(4)));
      case 0xde: return map(Number(u(2)));
      case 0xdf: return map(Number(u(4)));
      default: throw new RangeError('bad MessagePack type 0x' + t.toString(16));
    }
  };
  const v = dec();
  if (p !== b.length) throw new RangeError('trailing bytes after MessagePack');
  return v;
}

// ---- the client ----

/** An elbus RPC error: code is the JSON-RPC-style code, message its data. */
export class RpcError extends Error {
  constructor(code, message) { super(message); this.name = 'RpcError'; this.code = code; }
}

const toBytes = (payload) => {
  if (payload === undefined || payload === null) return new Uint8Array(0);
  if (typeof payload === 'string') return utf8.encode(payload);
  if (payload instanceof ArrayBuffer) return new Uint8Array(payload);
  if (payload instanceof Uint8Array) return payload;
  throw new TypeError('a payload is a string, an ArrayBuffer or a Uint8Array');
};

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of parts) { out.set(x, o); o += x.length; }
  return out;
};

const le32 = (n) => new Uint8Array([n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff]);

export class Client {
  constructor(ws, name) {
    this.ws = ws;
    this.name = name;
    this.opId = 0;
    this.callId = 0;
    this.acks = new Map();      // op id -> { resolve, reject }
    this.calls = new Map();     // call id -> { resolve, reject }
    this.methods = new Map();   // method -> handler
    this.buf = new Uint8Array(0);
    this.onmessage = null;      // (frame) => void, frames that are no RPC
    this.onbroadcast = null;
    this.onpublish = null;
    this.onnotification = null; // (frame) => void, frame.payload without the type byte
    this.onclose = null;
  }

  /** The payload as text: UTF-8, with each invalid byte sequence decoded
   * as U+FFFD (as TextDecoder does by default), so that binary payloads do
   * not throw; unpackMsgpack(payload) decodes a MessagePack one. */
  text(payload) { return toText.decode(payload); }

  _sendFrame(op, qos, body) {
    if (this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected'));
    this.opId = (this.opId + 1) >>> 0 || 1;
    const id = this.opId;
    this.ws.send(concat(le32(id), new Uint8Array([op | (qos << 6)]), le32(body.length), body));
    if (!(qos & 1)) return Promise.resolve();
    return new Promise((resolve, reject) => this.acks.set(id, { resolve, reject }));
  }

  _target(op, target, payload, qos) {
    return this._sendFrame(op, qos, concat(utf8.encode(target), new Uint8Array([0]), toBytes(payload)));
  }

  /** A message to one client, or a broadcast when target holds * or ?. */
  send(target, payload, qos = QoS.PROCESSED) {
    return this._target(/[*?]/.test(target) ? OP_BROADCAST : OP_MESSAGE, target, payload, qos);
  }

  publish(topic, payload, qos = QoS.PROCESSED) { return this._target(OP_PUBLISH, topic, payload, qos); }

  _masks(op, masks, qos) {
    const list = typeof masks === 'string' ? [masks] : masks;
    return this._sendFrame(op, qos, concat(...list.flatMap((m, i) =>
      i ? [new Uint8Array([0]), utf8.encode(m)] : [utf8.encode(m)])));
  }

  subscribe(masks, qos = QoS.PROCESSED) { return this._masks(OP_SUBSCRIBE, masks, qos); }
  unsubscribe(masks, qos = QoS.PROCESSED) { return this._masks(OP_UNSUBSCRIBE, masks, qos); }

  /** Calls method on target with params (packed as MessagePack); resolves
   * to the unpacked result, or rejects with an RpcError. */
  call(target, method, params = null, { timeout = 5000 } = {}) {
    this.callId = (this.callId + 1) >>> 0 || 1;
    const id = this.callId;
    const packed = params instanceof Uint8Array ? params : (params === null ? new Uint8Array(0) : packMsgpack(params));
    const p = new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.calls.delete(id); reject(new RpcError(-32000, 'timed out')); }, timeout);
      this.calls.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
    });
    const body = concat(new Uint8Array([RPC_REQUEST]), le32(id), utf8.encode(method), new Uint8Array([0]), packed);
    this._target(OP_MESSAGE, target, body, QoS.PROCESSED).catch((e) => {
      const c = this.calls.get(id);
      if (c) { this.calls.delete(id); c.reject(e instanceof RpcError ? e : new RpcError(-32000 - (e.result || 0), e.message)); }
    });
    return p;
  }

  /** An RPC notification (no answer). */
  notify(target, payload, qos = QoS.PROCESSED) {
    return this._target(OP_MESSAGE, target, concat(new Uint8Array([RPC_NOTIFICATION]), toBytes(payload)), qos);
  }

  /** Serves method: handler(params, frame) returns the result (packed as
   * MessagePack) or a Promise of it; throwing an RpcError answers its code. */
  serve(method, handler) { this.methods.set(method, handler); }

  close() { this.ws.close(); }

  _feed(data) {
    const b = this.buf.length ? concat(this.buf, data) : data;
    const frames = [];
    let p = 0;
    while (b.length - p >= 6) {
      const kind = b[p];
      const len = (b[p + 1] | (b[p + 2] << 8) | (b[p + 3] << 16) | (b[p + 4] << 24)) >>> 0;
      if (kind === KIND_PING) { p += 6; continue; }
      if (kind === KIND_ACK) {
        const a = this.acks.get(len);
        if (a) {
          this.acks.delete(len);
          if (b[p + 5] === 0x01) a.resolve();
          else { const e = new Error('elbus error 0x' + b[p + 5].toString(16)); e.result = b[p + 5]; a.reject(e); }
        }
        p += 6;
        continue;
      }
      if (b.length - p < 6 + len) break;
      frames.push([kind, b.subarray(p + 6, p + 6 + len), b[p + 5] === 1]);
      p += 6 + len;
    }
    // The read offset is committed before any handler runs, and a handler
    // that throws is reported and skipped: the frames after it are still
    // delivered, and none is ever delivered twice.
    this.buf = b.slice(p);
    for (const [kind, body, realtime] of frames) {
      try {
        this._frame(kind, body, realtime);
      } catch (e) {
        console.error('elbus.js: a handler threw:', e);
      }
    }
  }

  _frame(kind, body, realtime) {
    let z = body.indexOf(0);
    const sender = toText.decode(body.subarray(0, z));
    let rest = body.subarray(z + 1);
    const frame = { kind, sender, primarySender: sender.split('%%')[0], topic: null, payload: rest, realtime };
    if (kind === OP_PUBLISH) {
      z = rest.indexOf(0);
      frame.topic = toText.decode(rest.subarray(0, z));
      frame.payload = rest.subarray(z + 1);
      if (this.onpublish) this.onpublish(frame);
    } else if (kind === OP_BROADCAST) {
      if (this.onbroadcast) this.onbroadcast(frame);
    } else if (kind === OP_MESSAGE) {
      if (!this._rpc(frame) && this.onmessage) this.onmessage(frame);
    }
  }

  _answer(frame, type, id, data) {
    this._target(OP_MESSAGE, frame.sender, concat(new Uint8Array([type]), le32(id), data),
                 frame.realtime ? QoS.REALTIME_PROCESSED : QoS.PROCESSED).catch(() => {});
  }

  _rpc(frame) {
    const p = frame.payload;
    if (p.length === 0) return false;
    if (p[0] === RPC_NOTIFICATION) {
      if (this.onnotification) this.onnotification({ ...frame, payload: p.subarray(1) });
      return true;
    }
    if (p.length < 5 || ![RPC_REQUEST, RPC_REPLY, RPC_ERROR].includes(p[0])) return false;
    const id = (p[1] | (p[2] << 8) | (p[3] << 16) | (p[4] << 24)) >>> 0;
    if (p[0] === RPC_REQUEST) {
      const z = p.indexOf(0, 5);
      if (z < 0) return true;
      const method = toText.decode(p.subarray(5, z));
      const raw = p.slice(z + 1);
      const handler = this.methods.get(method);
      const fail = (code, msg) => {
        if (id === 0) return;
        const c = new Uint8Array([code & 0xff, (code >> 8) & 0xff]);
        this._answer(frame, RPC_ERROR, id, concat(c, utf8.encode(msg)));
      };
      if (!handler) { fail(-32601, 'method not found'); return true; }
      Promise.resolve().then(() => handler(raw.length ? unpackMsgpack(raw) : null, frame)).then(
        (result) => { if (id !== 0) this._answer(frame, RPC_REPLY, id, result === undefined ? new Uint8Array(0) : packMsgpack(result)); },
        (e) => fail(e instanceof RpcError ? e.code : -32603, String(e && e.message || e)));
      return true;
    }
    const call = this.calls.get(id);
    if (!call) return true;
    this.calls.delete(id);
    if (p[0] === RPC_REPLY) {
      try { call.resolve(p.length > 5 ? unpackMsgpack(p.slice(5)) : null); } catch (e) { call.reject(e); }
    } else {
      const code = p.length >= 7 ? ((p[5] | (p[6] << 8)) << 16) >> 16 : -32000;
      call.reject(new RpcError(code, p.length > 7 ? toText.decode(p.subarray(7)) : ''));
    }
    return true;
  }
}

/** Opens url (ws:// or wss://) and registers as name; resolves to a Client. */
export function connect(url, name, { timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const client = new Client(ws, name);
    const nameBytes = utf8.encode(name);
    let step = 0;   // 0: greeting, 1: greeting accepted, 2: name accepted
    let hs = new Uint8Array(0);
    const timer = setTimeout(() => { ws.close(); reject(new Error('handshake timed out')); }, timeout);
    const fail = (msg) => { clearTimeout(timer); ws.close(); reject(new Error(msg)); };
    ws.binaryType = 'arraybuffer';
    ws.onerror = () => fail('cannot connect to ' + url);
    ws.onclose = () => {
      if (step < 2) fail('the broker closed the connection during the handshake');
      for (const a of client.acks.values()) a.reject(new Error('disconnected'));
      for (const c of client.calls.values()) c.reject(new RpcError(-32000, 'disconnected'));
      client.acks.clear();
      client.calls.clear();
      if (client.onclose) client.onclose();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') return;
      const data = new Uint8Array(ev.data);
      if (step === 2) { client._feed(data); return; }
      hs = concat(hs, data);
      if (step === 0 && hs.length >= 3) {
        if (hs[0] !== 0xeb || hs[1] !== 1 || hs[2] !== 0) return fail('not an elbus broker');
        // the echo and the name in one message (docs/protocol.md 1)
        ws.send(concat(new Uint8Array([0xeb, 1, 0, nameBytes.length & 0xff, nameBytes.length >> 8]),
                       nameBytes));
        hs = hs.slice(3);
        step = 0.5;
      }
      if (step === 0.5 && hs.length >= 1) {
        if (hs[0] !== 0x01) return fail('greeting refused: 0x' + hs[0].toString(16));
        hs = hs.slice(1);
        step = 1;
      }
      if (step === 1 && hs.length >= 1) {
        if (hs[0] !== 0x01) return fail('registration of ' + name + ' refused: 0x' + hs[0].toString(16));
        step = 2;
        clearTimeout(timer);
        resolve(client);
        if (hs.length > 1) client._feed(hs.slice(1));
      }
    };
  });
}
