# SPDX-License-Identifier: MIT
#
# PyGObject overrides for Elbus.
#
# A Python exception raised in an Elbus.RpcPeer::handle-call handler would
# otherwise be printed by PyGObject and the handler's return value taken as
# False, so the caller would get METHOD_NOT_FOUND (-32601) for a method that
# exists. Handlers connected to 'handle-call' (with or without a detail,
# e.g. 'handle-call::add') are therefore wrapped: when one raises, the
# traceback is printed to stderr as PyGObject would print it, the call is
# answered with Elbus.RpcError.INTERNAL (-32603) and the exception's text,
# and the call counts as taken. A handler that answered before raising
# keeps its answer (the exception is only printed).
#
# Installed into gi/overrides, where PyGObject finds it by itself.

import sys

from ..module import get_introspection_module
from ..overrides import override

Elbus = get_introspection_module('Elbus')

__all__ = []

_INTERNAL = -32603


def _is_handle_call(detailed_signal):
    if not isinstance(detailed_signal, str):
        return False
    name = detailed_signal.split('::', 1)[0]
    return name.replace('_', '-') == 'handle-call'


class _HandleCallWrapper(object):
    """Calls a 'handle-call' handler; answers -32603 when it raises.

    Compares equal to the handler it wraps, so that disconnect_by_func(),
    handler_block_by_func() and handler_unblock_by_func() given the
    handler still find the connection.
    """

    __slots__ = ('handler',)

    def __init__(self, handler):
        self.handler = handler

    def __call__(self, *args):
        try:
            return self.handler(*args)
        except Exception as e:
            sys.excepthook(*sys.exc_info())
            invocation = next((a for a in args if isinstance(a, Elbus.RpcInvocation)), None)
            if invocation is None:
                return False
            if not getattr(invocation, '_elbus_answered', False):
                invocation.return_error(_INTERNAL, str(e) or type(e).__name__)
            return True

    def __eq__(self, other):
        if isinstance(other, _HandleCallWrapper):
            other = other.handler
        return self.handler == other

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self.handler)

    def __repr__(self):
        return '<handle-call handler %r>' % (self.handler,)


def _wrap_handler(detailed_signal, handler):
    if not _is_handle_call(detailed_signal) or not callable(handler) \
            or isinstance(handler, _HandleCallWrapper):
        return handler  # not ours, or PyGObject raises its usual TypeError
    return _HandleCallWrapper(handler)


class RpcInvocation(Elbus.RpcInvocation):
    """Remembers on the wrapper that the invocation was answered, so that a
    handler that raises after answering is not answered a second time."""

    def return_value(self, *args, **kwargs):
        result = super(RpcInvocation, self).return_value(*args, **kwargs)
        self._elbus_answered = True
        return result

    def return_variant(self, *args, **kwargs):
        result = super(RpcInvocation, self).return_variant(*args, **kwargs)
        self._elbus_answered = True
        return result

    def return_error(self, *args, **kwargs):
        result = super(RpcInvocation, self).return_error(*args, **kwargs)
        self._elbus_answered = True
        return result

    def return_gerror(self, *args, **kwargs):
        result = super(RpcInvocation, self).return_gerror(*args, **kwargs)
        self._elbus_answered = True
        return result


RpcInvocation = override(RpcInvocation)
__all__.append('RpcInvocation')


class RpcPeer(Elbus.RpcPeer):
    """An Elbus.RpcPeer whose 'handle-call' handlers answer -32603 with the
    exception's text when they raise."""

    def connect(self, detailed_signal, handler, *args, **kwargs):
        handler = _wrap_handler(detailed_signal, handler)
        return super(RpcPeer, self).connect(detailed_signal, handler, *args, **kwargs)

    def connect_after(self, detailed_signal, handler, *args, **kwargs):
        handler = _wrap_handler(detailed_signal, handler)
        return super(RpcPeer, self).connect_after(detailed_signal, handler, *args, **kwargs)

    def connect_object(self, detailed_signal, handler, *args, **kwargs):
        handler = _wrap_handler(detailed_signal, handler)
        return super(RpcPeer, self).connect_object(detailed_signal, handler, *args, **kwargs)

    def connect_object_after(self, detailed_signal, handler, *args, **kwargs):
        handler = _wrap_handler(detailed_signal, handler)
        return super(RpcPeer, self).connect_object_after(detailed_signal, handler, *args,
                                                         **kwargs)

    def connect_data(self, detailed_signal, handler, *data, **kwargs):
        handler = _wrap_handler(detailed_signal, handler)
        return super(RpcPeer, self).connect_data(detailed_signal, handler, *data, **kwargs)


RpcPeer = override(RpcPeer)
__all__.append('RpcPeer')
