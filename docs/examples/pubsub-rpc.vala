/* SPDX-License-Identifier: MIT
 *
 * Pub/sub and RPC with Elbus from Vala, with async methods.
 *
 * Two clients on one broker: "server" subscribes to demo/# and answers the
 * RPC method "greet"; "caller" publishes on demo/hello and calls greet.
 *
 *   valac --pkg elbus-1 pubsub-rpc.vala
 *   elbusd -B /tmp/elbus.sock &
 *   ./pubsub-rpc [ADDRESS]    # default /tmp/elbus.sock
 */

const Elbus.QoS QOS = Elbus.QoS.PROCESSED;

async void run (string address) throws GLib.Error {
    var prefix = "example.vala.%d".printf ((int) Posix.getpid ());
    var server = yield new Elbus.Client (address, prefix + ".server", null);
    var caller = yield new Elbus.Client (address, prefix + ".caller", null);

    /* Pub/sub: frames arrive as signals on the main loop. */
    string? received = null;
    var waiting = false;
    server.publication.connect ((frame) => {
        var payload = frame.get_payload ();
        received = ((string) payload.get_data ()).substring (0, (long) payload.get_size ());
        print ("%s got '%s' on %s\n", server.get_name (), received, frame.get_topic ());
        if (waiting)
            run.callback ();
    });
    yield server.subscribe_async ({ "demo/#" }, QOS, null);
    yield caller.publish_async ("demo/hello", new GLib.Bytes ("hi there".data), QOS, null);
    if (received == null) {
        waiting = true;
        yield;  /* resumed by the publication handler */
    }

    /* RPC: a handler for "greet" on the server, a yielded call from the caller. */
    var server_peer = new Elbus.RpcPeer (server);
    server_peer.handle_call["greet"].connect ((invocation) => {
        try {
            var name = invocation.get_params_variant ().lookup_value ("name", GLib.VariantType.STRING);
            invocation.return_variant (new GLib.Variant.string ("Hello, %s!".printf (name.get_string ())));
        } catch (GLib.Error e) {
            invocation.return_gerror (e);
        }
        return true;
    });
    var caller_peer = new Elbus.RpcPeer (caller);
    var builder = new GLib.VariantBuilder (new GLib.VariantType ("a{sv}"));
    builder.add ("{sv}", "name", new GLib.Variant.string ("world"));
    var reply = yield caller_peer.call_variant_async (server.get_name (), "greet", builder.end (), QOS, 0, null);
    print ("greet returned '%s'\n", reply.get_string ());

    caller.close ();
    server.close ();
}

int main (string[] args) {
    var address = args.length > 1 ? args[1] : "/tmp/elbus.sock";
    var loop = new GLib.MainLoop ();
    var status = 0;
    run.begin (address, (obj, res) => {
        try {
            run.end (res);
        } catch (GLib.Error e) {
            printerr ("failed: %s\n", e.message);
            status = 1;
        }
        loop.quit ();
    });
    loop.run ();
    return status;
}
