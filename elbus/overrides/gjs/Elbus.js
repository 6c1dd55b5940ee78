// SPDX-License-Identifier: MIT
//
// GJS overrides for Elbus, loaded by GJS from overrides/Elbus.js on its
// search path (installed to $datadir/gjs-1.0/overrides, in GJS's default
// search path; GJS_PATH adds a directory).
//
// An exception thrown in an Elbus.RpcPeer::handle-call handler would
// otherwise be logged by GJS and the handler's return taken as false, so
// the caller would get METHOD_NOT_FOUND (-32601) for a method that exists.
// Handlers connected to 'handle-call' (with or without a detail, e.g.
// 'handle-call::add') are therefore wrapped: when one throws, the error is
// logged with logError() and the call is answered with
// Elbus.RpcError.INTERNAL (-32603) and the error's text, and counts as
// taken. A handler that returns a promise (an async function) takes the
// call; if the promise rejects before the call is answered, the call is
// answered the same way. A handler that answered before throwing keeps
// its answer (the error is only logged).

const INTERNAL = -32603;

let Elbus;

// Invocations answered through the JS wrappers, so that a handler that
// throws after answering is not answered a second time.
const answered = new WeakSet();

function isHandleCall(detailedSignal) {
    if (typeof detailedSignal !== 'string')
        return false;
    return detailedSignal.split('::', 1)[0].replace(/_/g, '-') === 'handle-call';
}

function answerError(invocation, error) {
    logError(error, `Elbus.RpcPeer::handle-call handler for ${invocation.get_method()} failed`);
    if (!answered.has(invocation))
        invocation.return_error(INTERNAL, String(error));
}

function wrapHandler(detailedSignal, handler) {
    if (!isHandleCall(detailedSignal) || typeof handler !== 'function')
        return handler; // not ours, or GJS throws its usual TypeError
    return function (...args) {
        const invocation = args.find(arg => arg instanceof Elbus.RpcInvocation);
        let result;
        try {
            result = handler.apply(this, args);
        } catch (e) {
            if (!invocation)
                throw e;
            answerError(invocation, e);
            return true;
        }
        if (invocation && result && typeof result.then === 'function') {
            result.then(undefined, e => answerError(invocation, e));
            return true;
        }
        return result;
    };
}

function _init() {
    Elbus = this;

    const invocationProto = Elbus.RpcInvocation.prototype;
    for (const name of ['return_value', 'return_variant', 'return_error', 'return_gerror']) {
        const original = invocationProto[name];
        if (typeof original !== 'function')
            continue;
        invocationProto[name] = function (...args) {
            const result = original.apply(this, args);
            answered.add(this);
            return result;
        };
    }

    const peerProto = Elbus.RpcPeer.prototype;
    for (const name of ['connect', 'connect_after']) {
        const original = peerProto[name];
        peerProto[name] = function (detailedSignal, handler, ...rest) {
            return original.call(this, detailedSignal, wrapHandler(detailedSignal, handler), ...rest);
        };
    }
}
