/* SPDX-License-Identifier: MIT
 *
 * The Elbus binding from Vala, compiled with valac against the generated
 * elbus-1.vapi: an embedded Elbus.Broker on a temporary UNIX socket,
 * clients connected with `yield new Elbus.Client (...)`, a message and a
 * publication through signals, a subscription, an RPC call handled by a
 * Vala handler and an RPC error caught as Elbus.RpcError. Everything runs
 * on the default main loop.
 *
 * Prints TAP; exits non-zero on failure.
 */

const Elbus.QoS QOS = Elbus.QoS.PROCESSED;

errordomain TestError {
    FAILED
}

int failures = 0;
int test_number = 0;

void check (bool cond, string what) throws TestError {
    if (!cond)
        throw new TestError.FAILED ("assertion failed: %s", what);
}

string payload_text (Elbus.Frame frame) {
    unowned uint8[]? data = frame.get_payload ().get_data ();
    var text = new GLib.StringBuilder ();
    if (data != null)
        text.append_len ((string) data, data.length);
    return text.str;
}

/* Iterates the main loop until cond holds, or throws after 5 seconds. */
async void wait_for (owned GLib.SourceFunc cond, string what) throws TestError {
    var deadline = GLib.get_monotonic_time () + 5 * GLib.TimeSpan.SECOND;
    while (!cond ()) {
        if (GLib.get_monotonic_time () > deadline)
            throw new TestError.FAILED ("timed out waiting for %s", what);
        GLib.Timeout.add (10, wait_for.callback);
        yield;
    }
}

void report (string name, GLib.Error? error) {
    test_number++;
    if (error == null) {
        print ("ok %d %s\n", test_number, name);
    } else {
        failures++;
        print ("not ok %d %s\n# %s\n", test_number, name, error.message);
    }
}

async void run_tests (string path) {
    Elbus.Client? a = null;
    Elbus.Client? b = null;

    try {
        a = yield new Elbus.Client (path, "vala.a", null);
        b = yield new Elbus.Client (path, "vala.b", null);
        check (a.get_name () == "vala.a", "name");
        check (b.connected, "connected property");
        report ("connect async", null);
    } catch (GLib.Error e) {
        report ("connect async", e);
        return;
    }

    try {
        string? got = null;
        string? sender = null;
        var id = b.message.connect ((frame) => {
            sender = frame.get_sender ();
            got = payload_text (frame);
        });
        var ok = yield a.send_async ("vala.b", new GLib.Bytes ("hello".data), QOS, null);
        check (ok, "send_async returned true");
        yield wait_for (() => got != null, "the message");
        b.disconnect (id);
        check (sender == "vala.a", "message sender");
        check (got == "hello", "message payload");
        report ("message signal", null);
    } catch (GLib.Error e) {
        report ("message signal", e);
    }

    try {
        string? got = null;
        string? topic = null;
        var id = b.publication.connect ((frame) => {
            topic = frame.get_topic ();
            got = payload_text (frame);
        });
        yield b.subscribe_async ({ "vala/#" }, QOS, null);
        yield a.publish_async ("vala/news", new GLib.Bytes ("extra".data), QOS, null);
        yield wait_for (() => got != null, "the publication");
        b.disconnect (id);
        check (topic == "vala/news", "publication topic");
        check (got == "extra", "publication payload");
        report ("subscribe and publication signal", null);
    } catch (GLib.Error e) {
        report ("subscribe and publication signal", e);
    }

    var pa = new Elbus.RpcPeer (a);
    var pb = new Elbus.RpcPeer (b);
    string? caller = null;
    pb.handle_call["add"].connect ((invocation) => {
        caller = invocation.get_sender ();
        try {
            var params = invocation.get_params_variant ();
            var x = params.lookup_value ("a", GLib.VariantType.INT64).get_int64 ();
            var y = params.lookup_value ("b", GLib.VariantType.INT64).get_int64 ();
            invocation.return_variant (new GLib.Variant.int64 (x + y));
        } catch (GLib.Error e) {
            invocation.return_gerror (e);
        }
        return true;
    });
    pb.handle_call["fail"].connect ((invocation) => {
        invocation.return_error (Elbus.RpcError.INVALID_PARAMS, "no, thanks");
        return true;
    });

    try {
        var builder = new GLib.VariantBuilder (new GLib.VariantType ("a{sv}"));
        builder.add ("{sv}", "a", new GLib.Variant.int64 (40));
        builder.add ("{sv}", "b", new GLib.Variant.int64 (2));
        var result = yield pa.call_variant_async ("vala.b", "add", builder.end (), QOS, 0, null);
        check (result.get_int64 () == 42, "40 + 2 == 42");
        check (caller == "vala.a", "handler saw the caller");
        report ("RPC call handled in Vala", null);
    } catch (GLib.Error e) {
        report ("RPC call handled in Vala", e);
    }

    try {
        try {
            yield pa.call_variant_async ("vala.b", "fail", null, QOS, 0, null);
            throw new TestError.FAILED ("the failing call succeeded");
        } catch (Elbus.RpcError.INVALID_PARAMS e) {
            check ("no, thanks" in e.message, "error message: " + e.message);
        }
        try {
            yield pa.call_variant_async ("vala.b", "no_such_method", null, QOS, 0, null);
            throw new TestError.FAILED ("the unknown method succeeded");
        } catch (Elbus.RpcError e) {
            check (e is Elbus.RpcError.METHOD_NOT_FOUND, "METHOD_NOT_FOUND, got %d".printf (e.code));
        }
        report ("RPC errors as Elbus.RpcError", null);
    } catch (GLib.Error e) {
        report ("RPC errors as Elbus.RpcError", e);
    }

    a.close ();
    b.close ();
}

int main (string[] args) {
    string dir;
    try {
        dir = GLib.DirUtils.make_tmp ("elbus-vala-XXXXXX");
    } catch (GLib.Error e) {
        printerr ("%s\n", e.message);
        return 1;
    }
    var path = GLib.Path.build_filename (dir, "elbus.sock");

    var broker = new Elbus.Broker ();
    try {
        broker.listen_unix (path);
    } catch (GLib.Error e) {
        printerr ("listen: %s\n", e.message);
        return 1;
    }

    print ("1..5\n");
    var loop = new GLib.MainLoop ();
    run_tests.begin (path, (obj, res) => {
        run_tests.end (res);
        loop.quit ();
    });
    loop.run ();

    broker.close ();
    GLib.FileUtils.remove (path);
    GLib.DirUtils.remove (dir);

    if (test_number != 5)
        failures++;
    return failures == 0 ? 0 : 1;
}
