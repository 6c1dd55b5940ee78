/* SPDX-License-Identifier: MIT */
/*
 * elbus-monitor: watches the traffic of an elbus broker, as dbus-monitor
 * does for D-Bus.
 *
 *   elbus-monitor PATH [--sender MASK]… [--target MASK]… [--topic MASK]…
 *                 [--kind KIND]… [--max-payload N] [--count N] [--duration S]
 *                 [--json | --pcap FILE] [--stats] …
 *
 * It connects as an ordinary client and calls `.broker` method
 * `monitor.start` with its filters (docs/protocol.md section 9). From then on
 * the broker sends it one publication from `.broker` on `.broker/monitor`
 * per routed event, a MessagePack map; each one is shown as a line, a JSON
 * line or a pcap record, or counted for the statistics view.
 *
 * docs/man/elbus-monitor.1 documents the output formats field by field;
 * keep the two in step.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <glib/gi18n.h>
#include <glib-unix.h>
#include <json-glib/json-glib.h>
#include <msgpack.h>

#include <elbus/elbus.h>

#include "elbus-monitor-event.h"
#include "elbus-monitor-filter.h"
#include "elbus-tool-util.h"

/* Exit statuses (the man page lists them too): EXIT_ERROR (cannot
 * connect, the broker went away, output failed) and EXIT_USAGE (a bad
 * command line, or filters the broker rejects) as the other tools, and: */
#define EXIT_OK       0   /* Ctrl+C, SIGTERM, --count or --duration reached */
#define EXIT_REFUSED  3   /* the broker cannot or will not let us monitor */

/* Events that arrive this much later than they happened mean that the
 * monitor is behind. */
#define LAGGING_US (20 * G_TIME_SPAN_MILLISECOND)

/* --max-payload not given (a value no one can type as a valid one) */
#define MAX_PAYLOAD_UNSET G_MININT64

#define MONITOR_TOPIC ".broker/monitor"
#define WARN_TOPIC    ".broker/warn"

/* -32000 - 0x79: the access-denied RPC error of docs/protocol.md section 8 */
#define RPC_ERROR_ACCESS_DENIED (-32000 - ELBUS_ERROR_ACCESS)

/* ---- options ---------------------------------------------------------- */

typedef enum {
  COLOR_AUTO,
  COLOR_ALWAYS,
  COLOR_NEVER,
} ColorMode;

typedef struct {
  char     **senders;       /* (owned) (nullable): --sender */
  char     **targets;       /* (owned) (nullable): --target */
  char     **topics;        /* (owned) (nullable): --topic */
  char     **kinds;         /* (owned) (nullable): --kind, as given */
  gint64     max_payload;   /* --max-payload; MAX_PAYLOAD_UNSET when not given */
  gint64     count;         /* --count; 0 when not given */
  double     duration;      /* --duration, seconds; 0 when not given */
  gboolean   json;          /* --json */
  char      *pcap;          /* (owned) (nullable): --pcap FILE, "-" for stdout */
  gboolean   stats;         /* --stats */
  gboolean   announcements; /* --announcements */
  int        top;           /* --top */
  char      *color;         /* (owned) (nullable): --color */
  char      *name;          /* (owned) (nullable): --name */
  double     timeout;       /* --timeout, seconds */
  gboolean   quiet;         /* --quiet */
  gboolean   verbose;       /* --verbose */
  gboolean   version;       /* --version */
} Options;

static Options opts = {
  .max_payload = MAX_PAYLOAD_UNSET,
  .top = 10,
  .timeout = ELBUS_CLIENT_DEFAULT_TIMEOUT,
};

static const GOptionEntry filter_entries[] = {
  { "sender", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opts.senders,
    N_("Only events whose sender matches MASK (. separates parts, ? is one part, * the rest); "
       "repeatable"), N_("MASK") },
  { "target", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opts.targets,
    N_("Only messages, broadcasts and registrations whose target, mask or client name "
       "matches MASK; repeatable"), N_("MASK") },
  { "topic", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opts.topics,
    N_("Only publications and subscriptions whose topic or mask matches MASK (/ separates "
       "levels, + is one level, # the rest); repeatable"), N_("MASK") },
  { "kind", 'k', 0, G_OPTION_ARG_STRING_ARRAY, &opts.kinds,
    N_("Only events of KIND: message, broadcast, publish, subscribe, unsubscribe, reg, unreg "
       "(repeatable, or separated by commas)"), N_("KIND") },
  { "max-payload", 0, 0, G_OPTION_ARG_INT64, &opts.max_payload,
    N_("Ask the broker for at most BYTES of each payload"), N_("BYTES") },
  { "announcements", 0, 0, G_OPTION_ARG_NONE, &opts.announcements,
    N_("Also show .broker's announcements (its publications on .broker/info and "
       ".broker/warn, which repeat the reg and unreg events); on when a --sender or --topic "
       "mask starts with .broker"), NULL },
  { NULL }
};

static const GOptionEntry main_entries[] = {
  { "json", 'j', 0, G_OPTION_ARG_NONE, &opts.json,
    N_("One JSON object per line, for scripts"), NULL },
  { "pcap", 0, 0, G_OPTION_ARG_FILENAME, &opts.pcap,
    N_("Write a pcap capture to FILE (- for standard output) instead of lines"), N_("FILE") },
  { "stats", 0, 0, G_OPTION_ARG_NONE, &opts.stats,
    N_("Show live statistics instead of lines (a summary at the end when standard output "
       "is not a terminal)"), NULL },
  { "top", 0, 0, G_OPTION_ARG_INT, &opts.top,
    N_("Rows per table in --stats (default 10)"), N_("N") },
  { "count", 'c', 0, G_OPTION_ARG_INT64, &opts.count,
    N_("Exit after N events that pass the filters"), N_("N") },
  { "duration", 'd', 0, G_OPTION_ARG_DOUBLE, &opts.duration,
    N_("Exit after SECONDS of monitoring"), N_("SECONDS") },
  { "color", 0, 0, G_OPTION_ARG_STRING, &opts.color,
    N_("Color the lines: auto (on a terminal, the default), always or never"), N_("WHEN") },
  { "name", 'n', 0, G_OPTION_ARG_STRING, &opts.name,
    N_("Client name (default elbus-monitor.HOSTNAME.PID)"), N_("NAME") },
  { "timeout", 0, 0, G_OPTION_ARG_DOUBLE, &opts.timeout,
    N_("Connection and call timeout (default 5)"), N_("SECONDS") },
  { "quiet", 'q', 0, G_OPTION_ARG_NONE, &opts.quiet,
    N_("Do not say on standard error when monitoring starts"), NULL },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opts.verbose, N_("Debug logging"), NULL },
  { "version", 0, 0, G_OPTION_ARG_NONE, &opts.version, N_("Print the version and exit"), NULL },
  { NULL }
};

static void
options_clear (void)
{
  g_clear_pointer (&opts.senders, g_strfreev);
  g_clear_pointer (&opts.targets, g_strfreev);
  g_clear_pointer (&opts.topics, g_strfreev);
  g_clear_pointer (&opts.kinds, g_strfreev);
  g_clear_pointer (&opts.pcap, g_free);
  g_clear_pointer (&opts.color, g_free);
  g_clear_pointer (&opts.name, g_free);
}

static gboolean
check_options (GError **error)
{
  if (opts.kinds != NULL)
    {
      char **kinds = parse_kinds (opts.kinds, error);

      if (kinds == NULL)
        return FALSE;
      g_strfreev (opts.kinds);
      opts.kinds = kinds;
    }
  if (!check_masks (opts.senders, "--sender", '.', error) ||
      !check_masks (opts.targets, "--target", '.', error) ||
      !check_masks (opts.topics, "--topic", '/', error))
    return FALSE;

  if (opts.max_payload != MAX_PAYLOAD_UNSET &&
      (opts.max_payload < 0 || opts.max_payload > G_MAXUINT32))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--max-payload must be between 0 and %u"), G_MAXUINT32);
      return FALSE;
    }
  if (opts.count < 0 || opts.duration < 0 || opts.timeout <= 0 || opts.top < 1)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("--count and --duration cannot be negative; --timeout and "
                             "--top must be positive"));
      return FALSE;
    }
  if (!elbus_tool_check_timeout (opts.timeout, error))
    return FALSE;
  if (opts.json && opts.pcap != NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           _("--json and --pcap cannot be used together"));
      return FALSE;
    }
  if (opts.json && opts.stats)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           _("--json and --stats cannot be used together"));
      return FALSE;
    }
  if (opts.stats && g_strcmp0 (opts.pcap, "-") == 0)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           _("--stats needs standard output: write the capture to a file"));
      return FALSE;
    }
  if (opts.color != NULL && !g_str_equal (opts.color, "auto") &&
      !g_str_equal (opts.color, "always") && !g_str_equal (opts.color, "never"))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--color takes auto, always or never, not “%s”"), opts.color);
      return FALSE;
    }
  return TRUE;
}

/* ---- time ------------------------------------------------------------- */

/* The date and time part of a timestamp, formatted once per second:
 * g_date_time_new_from_unix_local() looks at /etc/localtime each time,
 * which would cost more than the rest of an event. */
typedef struct {
  gint64  second;
  char   *text;           /* (owned) (nullable) */
} TimeCache;

static const char *
format_second (TimeCache  *cache,
               gint64      second,
               gboolean    utc,
               const char *format)
{
  if (cache->text == NULL || cache->second != second)
    {
      g_autoptr(GDateTime) dt = utc ? g_date_time_new_from_unix_utc (second)
                                    : g_date_time_new_from_unix_local (second);

      g_free (cache->text);
      cache->text = dt != NULL ? g_date_time_format (dt, format) : NULL;
      if (cache->text == NULL)
        cache->text = g_strdup ("?");
      cache->second = second;
    }
  return cache->text;
}

static TimeCache local_time_cache;
static TimeCache utc_time_cache;

/* @value in decimal */
static void
append_uint (GString *out,
             guint64  value)
{
  char digits[20];
  guint n = 0;

  do
    digits[n++] = '0' + value % 10;
  while ((value /= 10) > 0);
  while (n > 0)
    g_string_append_c (out, digits[--n]);
}

static void
append_int (GString *out,
            gint64   value)
{
  if (value < 0)
    g_string_append_c (out, '-');
  append_uint (out, value < 0 ? -(guint64) value : (guint64) value);
}

/* The microseconds of @t (not negative) as six digits. */
static void
append_micros (GString *out,
               gint64   t)
{
  guint us = (guint) (t / 1000 % G_USEC_PER_SEC);
  char digits[6];

  for (int i = 5; i >= 0; i--, us /= 10)
    digits[i] = '0' + us % 10;
  g_string_append_len (out, digits, sizeof digits);
}

/* "HH:MM:SS.uuuuuu", local time */
static void
append_time_local (GString *out,
                   gint64   t)
{
  g_string_append (out, format_second (&local_time_cache, t / G_GINT64_CONSTANT (1000000000),
                                       FALSE, "%H:%M:%S"));
  g_string_append_c (out, '.');
  append_micros (out, t);
}

/* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ", UTC (ISO 8601) */
static void
append_time_utc (GString *out,
                 gint64   t)
{
  g_string_append (out, format_second (&utc_time_cache, t / G_GINT64_CONSTANT (1000000000),
                                       TRUE, "%Y-%m-%dT%H:%M:%S"));
  g_string_append_c (out, '.');
  append_micros (out, t);
  g_string_append_c (out, 'Z');
}

/* ---- lines ------------------------------------------------------------ */

#define ANSI_RESET   "\033[0m"
#define ANSI_DIM     "\033[2m"
#define ANSI_BOLD    "\033[1m"
#define ANSI_RED     "\033[31m"

static const char * const kind_colors[N_KINDS] = {
  "\033[36m",   /* message: cyan */
  "\033[35m",   /* broadcast: magenta */
  "\033[32m",   /* publish: green */
  "\033[34m",   /* subscribe: blue */
  "\033[34m",   /* unsubscribe: blue */
  "\033[33m",   /* reg: yellow */
  "\033[33m",   /* unreg: yellow */
};

/* Text in a color: on, then off. Everything is appended to one string
 * per event, which the monitor reuses: an event costs no allocation and
 * no printf(). */
static void
color_on (GString    *line,
          gboolean    color,
          const char *ansi)
{
  if (color)
    g_string_append (line, ansi);
}

static void
color_off (GString  *line,
           gboolean  color)
{
  if (color)
    g_string_append (line, ANSI_RESET);
}

static void
append_colored (GString    *line,
                gboolean    color,
                const char *ansi,
                const char *text)
{
  color_on (line, color, ansi);
  g_string_append (line, text);
  color_off (line, color);
}

/* A payload on one line: as elbus-tool-util shows it, with line breaks
 * and tabs of text written as \n, \r and \t. */
static void
append_payload (GString      *line,
                const guint8 *data,
                gsize         len)
{
  g_autofree char *text = elbus_tool_format_payload_data (data, len);
  const char *run = text;

  for (const char *c = text; *c != '\0'; c++)
    {
      const char *escape = *c == '\n' ? "\\n" : *c == '\r' ? "\\r" : *c == '\t' ? "\\t" : NULL;

      if (escape == NULL)
        continue;
      g_string_append_len (line, run, c - run);
      g_string_append (line, escape);
      run = c + 1;
    }
  g_string_append (line, run);
}

static void
append_rpc (GString   *line,
            gboolean   color,
            const Rpc *rpc)
{
  switch (rpc->type)
    {
    case RPC_CALL:
      g_string_append (line, rpc->id == 0 ? "call0 " : "call ");
      g_string_append (line, rpc->method);
      if (rpc->id != 0)
        {
          g_string_append (line, " #");
          append_uint (line, rpc->id);
        }
      break;
    case RPC_REPLY:
      g_string_append (line, "reply #");
      append_uint (line, rpc->id);
      break;
    case RPC_ERROR:
      color_on (line, color, ANSI_RED);
      g_string_append (line, "error #");
      append_uint (line, rpc->id);
      g_string_append_c (line, ' ');
      append_int (line, rpc->code);
      color_off (line, color);
      break;
    case RPC_NOTIFICATION:
      g_string_append (line, "notify");
      break;
    case RPC_NONE:
    default:
      g_assert_not_reached ();
    }

  if (rpc->body_len > 0)
    {
      g_string_append_c (line, ' ');
      append_payload (line, rpc->body, rpc->body_len);
    }
}

/*
 * One event as a line, appended to @line:
 *
 *   TIME KIND SENDER → DEST qQOS [×RECIPIENTS] [RESULT] SIZE B PREVIEW
 *
 * DEST is the target, mask or topic, or the masks of a subscription; reg
 * and unreg have none. ×RECIPIENTS for broadcasts and publications; the
 * result only when it is not OK.
 */
static void
event_append_line (GString     *line,
                   const Event *ev,
                   gboolean     color)
{
  color_on (line, color, ANSI_DIM);
  append_time_local (line, ev->t);
  color_off (line, color);
  g_string_append_c (line, ' ');
  color_on (line, color, kind_colors[ev->kind]);
  /* as "%-11s": "unsubscribe" is the longest */
  g_string_append (line, kind_names[ev->kind]);
  for (gsize n = strlen (kind_names[ev->kind]); n < 11; n++)
    g_string_append_c (line, ' ');
  color_off (line, color);
  g_string_append_c (line, ' ');
  append_colored (line, color, ANSI_BOLD, ev->sender);

  if (ev->dest != NULL)
    {
      g_string_append (line, " → ");
      g_string_append (line, ev->dest);
    }
  else if (ev->masks != NULL)
    {
      g_string_append (line, " → ");
      for (guint i = 0; ev->masks[i] != NULL; i++)
        {
          if (i > 0)
            g_string_append (line, ", ");
          g_string_append (line, ev->masks[i]);
        }
    }

  if (ev->kind != KIND_REG && ev->kind != KIND_UNREG)
    {
      g_string_append (line, " q");
      append_uint (line, ev->qos);
    }
  if (ev->kind == KIND_BROADCAST || ev->kind == KIND_PUBLISH)
    {
      g_string_append (line, " ×");
      append_uint (line, ev->recipients);
    }

  if (ev->result != 0x01)
    {
      g_string_append_c (line, ' ');
      color_on (line, color, ANSI_RED);
      g_string_append_c (line, '[');
      for (const char *c = result_name (ev->result); *c != '\0'; c++)
        g_string_append_c (line, *c == '_' ? ' ' : *c);
      g_string_append_c (line, ']');
      color_off (line, color);
    }

  if (kind_has_payload (ev->kind))
    {
      Rpc rpc = { 0 };

      g_string_append_c (line, ' ');
      append_uint (line, ev->size);
      g_string_append (line, " B");
      if (event_parse_rpc (ev, &rpc))
        {
          g_string_append_c (line, ' ');
          append_rpc (line, color, &rpc);
        }
      else if (ev->payload_len > 0)
        {
          g_string_append_c (line, ' ');
          append_payload (line, ev->payload, ev->payload_len);
        }
      if (event_is_truncated (ev))
        {
          g_string_append_c (line, ' ');
          color_on (line, color, ANSI_DIM);
          g_string_append (line, "…(+");
          append_uint (line, ev->size - ev->payload_len);
          g_string_append (line, " bytes)");
          color_off (line, color);
        }
    }

  g_string_append_c (line, '\n');
}

/* ---- JSON -------------------------------------------------------------
 *
 * Written directly, as json-glib's generator writes a JsonBuilder's object
 * (members in order, no spaces): building one per event cost more than
 * the rest of the monitor. The payload is still json-glib's.
 */

/* @str as a JSON string: here when nothing in it needs escaping, as
 * nearly always, else by json-glib, which escapes as it does. */
static void
json_append_string (GString    *out,
                    const char *str)
{
  const char *c;

  for (c = str; *c != '\0'; c++)
    if ((guchar) *c < 0x20 || *c == '"' || *c == '\\' || *c == 0x7f)
      break;
  if (*c == '\0')
    {
      g_string_append_c (out, '"');
      g_string_append_len (out, str, c - str);
      g_string_append_c (out, '"');
    }
  else
    {
      g_autoptr(JsonNode) node = json_node_init_string (json_node_alloc (), str);
      g_autofree char *text = json_to_string (node, FALSE);

      g_string_append (out, text);
    }
}

/* ,"NAME": (for names that need no escaping) */
static void
json_append_member (GString    *out,
                    const char *name)
{
  g_string_append (out, ",\"");
  g_string_append (out, name);
  g_string_append (out, "\":");
}

static void
json_append_int_member (GString    *out,
                        const char *name,
                        gint64      value)
{
  json_append_member (out, name);
  append_int (out, value);
}

static void
json_append_string_member (GString    *out,
                           const char *name,
                           const char *value)
{
  json_append_member (out, name);
  json_append_string (out, value);
}

static void
json_append_payload (GString      *out,
                     const guint8 *data,
                     gsize         len)
{
  ElbusToolPayloadFormat format;
  g_autoptr(JsonNode) node = elbus_tool_payload_decode (data, len, &format);

  json_append_string_member (out, "payload_format", elbus_tool_payload_format_name (format));
  json_append_member (out, "payload");
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
    json_append_string (out, json_node_get_string (node));
  else
    {
      g_autofree char *text = json_to_string (node, FALSE);

      g_string_append (out, text);
    }
}

/* One event as a JSON object on one line, appended to @out; the man page
 * documents every member. */
static void
event_append_json (GString     *out,
                   const Event *ev)
{
  g_string_append (out, "{\"time\":\"");
  append_time_utc (out, ev->t);
  g_string_append_c (out, '"');
  json_append_int_member (out, "t", ev->t);
  json_append_string_member (out, "kind", kind_names[ev->kind]);
  json_append_string_member (out, "sender", ev->sender);

  switch (ev->kind)
    {
    case KIND_MESSAGE:
    case KIND_BROADCAST:
      json_append_string_member (out, "target", ev->dest);
      break;
    case KIND_PUBLISH:
      json_append_string_member (out, "topic", ev->dest);
      break;
    case KIND_SUBSCRIBE:
    case KIND_UNSUBSCRIBE:
      json_append_member (out, "masks");
      g_string_append_c (out, '[');
      for (guint i = 0; ev->masks[i] != NULL; i++)
        {
          if (i > 0)
            g_string_append_c (out, ',');
          json_append_string (out, ev->masks[i]);
        }
      g_string_append_c (out, ']');
      break;
    case KIND_REG:
    case KIND_UNREG:
    case N_KINDS:
    default:
      break;
    }

  json_append_int_member (out, "qos", ev->qos);
  json_append_int_member (out, "recipients", (gint64) MIN (ev->recipients, (guint64) G_MAXINT64));
  json_append_string_member (out, "result", result_name (ev->result));
  json_append_int_member (out, "code", ev->result);
  json_append_int_member (out, "size", (gint64) MIN (ev->size, (guint64) G_MAXINT64));

  if (kind_has_payload (ev->kind))
    {
      Rpc rpc = { 0 };

      json_append_member (out, "truncated");
      g_string_append (out, event_is_truncated (ev) ? "true" : "false");
      if (event_parse_rpc (ev, &rpc))
        {
          json_append_member (out, "rpc");
          g_string_append (out, "{\"type\":");
          json_append_string (out, rpc_type_name (&rpc));
          if (rpc.type != RPC_NOTIFICATION)
            json_append_int_member (out, "id", rpc.id);
          if (rpc.type == RPC_CALL)
            json_append_string_member (out, "method", rpc.method);
          if (rpc.type == RPC_ERROR)
            json_append_int_member (out, "code", rpc.code);
          g_string_append_c (out, '}');
          json_append_payload (out, rpc.body, rpc.body_len);
        }
      else
        json_append_payload (out, ev->payload, ev->payload_len);
    }

  g_string_append (out, "}\n");
}

/* ---- pcap --------------------------------------------------------------
 *
 * A classic pcap file, little-endian, nanosecond timestamps (magic
 * 0xa1b23c4d), link type LINKTYPE_USER0 (147). Each record is a metadata
 * header, the sender's name, and the frame as the sender wrote it to the
 * broker (docs/protocol.md section 2, operation id 0 since the broker does not
 * report it); the record's original length counts the whole payload, the
 * captured length what the broker sent of it. data/elbus.lua, the
 * Wireshark dissector, and the man page describe the same layout.
 */

#define PCAP_MAGIC_NS       0xa1b23c4du
#define PCAP_LINKTYPE_USER0 147u
#define PCAP_SNAPLEN        262144u       /* Wireshark's largest record */
#define PCAP_META_VERSION   1
#define PCAP_META_SIZE      16

/* The frame's operation per kind; reg and unreg have no frame. (The
 * metadata's kind byte is EventKind + 1.) */
static const guint8 pcap_ops[N_KINDS] = { 0x12, 0x13, 0x01, 0x02, 0x03, 0, 0 };

static guint32
saturate_u32 (guint64 value)
{
  return (guint32) MIN (value, (guint64) G_MAXUINT32);
}

/* Writes little-endian values and bytes into a buffer of @room bytes,
 * dropping what does not fit. */
typedef struct {
  guint8 *pos;
  gsize   room;
} PcapWriter;

static void
pcap_put (PcapWriter *w,
          const void *data,
          gsize       len)
{
  len = MIN (len, w->room);
  if (len > 0)
    memcpy (w->pos, data, len);
  w->pos += len;
  w->room -= len;
}

static void
pcap_put_u8 (PcapWriter *w,
             guint8      value)
{
  pcap_put (w, &value, 1);
}

static void
pcap_put_u16 (PcapWriter *w,
              guint16     value)
{
  guint8 bytes[2] = { value & 0xff, value >> 8 };

  pcap_put (w, bytes, sizeof bytes);
}

static void
pcap_put_u32 (PcapWriter *w,
              guint32     value)
{
  guint8 bytes[4] = { value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, value >> 24 };

  pcap_put (w, bytes, sizeof bytes);
}

#define PCAP_FILE_HEADER_SIZE   24
#define PCAP_RECORD_HEADER_SIZE 16

static void
pcap_file_header (guint8 header[PCAP_FILE_HEADER_SIZE])
{
  PcapWriter w = { header, PCAP_FILE_HEADER_SIZE };

  pcap_put_u32 (&w, PCAP_MAGIC_NS);
  pcap_put_u16 (&w, 2);           /* version 2.4 */
  pcap_put_u16 (&w, 4);
  pcap_put_u32 (&w, 0);           /* thiszone */
  pcap_put_u32 (&w, 0);           /* sigfigs */
  pcap_put_u32 (&w, PCAP_SNAPLEN);
  pcap_put_u32 (&w, PCAP_LINKTYPE_USER0);
}

/* One record into @record, which it resizes: the 16-byte record header,
 * then the captured bytes. Only those are written, so that @record,
 * reused from event to event, stays within the snap length. */
static void
pcap_record (const Event *ev,
             GByteArray  *record)
{
  gsize sender_len = MIN (strlen (ev->sender), G_MAXUINT16 - PCAP_META_SIZE);
  gsize dest_len = 0, body_len = 0, data_len;
  guint64 orig_len = PCAP_META_SIZE + sender_len;
  gboolean has_frame = FALSE;
  PcapWriter w;

  if (kind_has_payload (ev->kind))
    {
      dest_len = strlen (ev->dest);
      has_frame = TRUE;
      data_len = PCAP_META_SIZE + sender_len + 9 + dest_len + 1 + ev->payload_len;
      orig_len += 9 + dest_len + 1 + ev->size;
    }
  else if (ev->kind == KIND_SUBSCRIBE || ev->kind == KIND_UNSUBSCRIBE)
    {
      for (guint i = 0; ev->masks[i] != NULL; i++)
        body_len += strlen (ev->masks[i]) + (ev->masks[i + 1] != NULL ? 1 : 0);
      has_frame = TRUE;
      data_len = PCAP_META_SIZE + sender_len + 9 + body_len;
      orig_len += 9 + body_len;
    }
  else
    {
      data_len = PCAP_META_SIZE + sender_len;
    }

  g_byte_array_set_size (record, PCAP_RECORD_HEADER_SIZE + MIN (data_len, PCAP_SNAPLEN));
  w.pos = record->data;
  w.room = record->len;

  pcap_put_u32 (&w, (guint32) (ev->t / G_GINT64_CONSTANT (1000000000)));
  pcap_put_u32 (&w, (guint32) (ev->t % G_GINT64_CONSTANT (1000000000)));
  pcap_put_u32 (&w, MIN (data_len, PCAP_SNAPLEN));
  pcap_put_u32 (&w, saturate_u32 (orig_len));

  pcap_put_u8 (&w, PCAP_META_VERSION);
  pcap_put_u8 (&w, ev->kind + 1);
  pcap_put_u8 (&w, ev->qos);
  pcap_put_u8 (&w, ev->result);
  pcap_put_u32 (&w, saturate_u32 (ev->recipients));
  pcap_put_u32 (&w, saturate_u32 (ev->size));
  pcap_put_u16 (&w, sender_len);
  pcap_put_u16 (&w, PCAP_META_SIZE + sender_len);   /* where the frame starts */
  pcap_put (&w, ev->sender, sender_len);

  if (!has_frame)
    return;
  pcap_put_u32 (&w, 0);
  pcap_put_u8 (&w, pcap_ops[ev->kind] | ev->qos << 6);
  if (kind_has_payload (ev->kind))
    {
      pcap_put_u32 (&w, saturate_u32 (dest_len + 1 + ev->size));
      pcap_put (&w, ev->dest, dest_len + 1);
      pcap_put (&w, ev->payload, ev->payload_len);
    }
  else
    {
      pcap_put_u32 (&w, body_len);
      for (guint i = 0; ev->masks[i] != NULL; i++)
        pcap_put (&w, ev->masks[i], strlen (ev->masks[i]) + (ev->masks[i + 1] != NULL ? 1 : 0));
    }
}

/* ---- statistics ------------------------------------------------------- */

typedef struct {
  char    *name;          /* (owned) */
  guint64  frames;
  guint64  bytes;         /* payload bytes, whole (l) */
  guint64  prev_frames;   /* at the previous refresh */
  guint64  prev_bytes;
  double   frames_rate;   /* per second, since the previous refresh */
  double   bytes_rate;
} StatsEntry;

typedef struct {
  GHashTable *senders;      /* (owned): name → (owned) StatsEntry; traffic only */
  GHashTable *topics;       /* (owned): topic → (owned) StatsEntry; publications */
  StatsEntry  total;
  guint64     by_kind[N_KINDS];
  gint64      started;      /* monotonic µs */
  gint64      refreshed;    /* monotonic µs */
  gboolean    live;         /* standard output is a terminal: redraw it */
} Stats;

static void
stats_entry_free (StatsEntry *entry)
{
  g_free (entry->name);
  g_free (entry);
}

static Stats *
stats_new (gboolean live)
{
  Stats *stats = g_new0 (Stats, 1);

  stats->senders = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                          (GDestroyNotify) stats_entry_free);
  stats->topics = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                         (GDestroyNotify) stats_entry_free);
  stats->started = stats->refreshed = g_get_monotonic_time ();
  stats->live = live;
  return stats;
}

static void
stats_free (Stats *stats)
{
  g_hash_table_unref (stats->senders);
  g_hash_table_unref (stats->topics);
  g_free (stats);
}

static void
stats_count (GHashTable *table,
             const char *name,
             guint64     bytes)
{
  StatsEntry *entry = g_hash_table_lookup (table, name);

  if (entry == NULL)
    {
      entry = g_new0 (StatsEntry, 1);
      entry->name = g_strdup (name);
      g_hash_table_insert (table, entry->name, entry);
    }
  entry->frames++;
  entry->bytes += bytes;
}

static void
stats_add (Stats       *stats,
           const Event *ev)
{
  stats->total.frames++;
  stats->total.bytes += ev->size;
  stats->by_kind[ev->kind]++;
  /* who sends: messages, broadcasts and publications, not who comes,
   * goes or subscribes */
  if (kind_has_payload (ev->kind))
    stats_count (stats->senders, ev->sender, ev->size);
  if (ev->kind == KIND_PUBLISH)
    stats_count (stats->topics, ev->dest, ev->size);
}

/* Rates since the previous refresh, or, with @overall, since the start. */
static void
stats_entry_update (StatsEntry *entry,
                    double      seconds,
                    gboolean    overall)
{
  entry->frames_rate = (entry->frames - (overall ? 0 : entry->prev_frames)) / seconds;
  entry->bytes_rate = (entry->bytes - (overall ? 0 : entry->prev_bytes)) / seconds;
  entry->prev_frames = entry->frames;
  entry->prev_bytes = entry->bytes;
}

static void
stats_update (Stats    *stats,
              gboolean  overall)
{
  gint64 now = g_get_monotonic_time ();
  double seconds = MAX (now - (overall ? stats->started : stats->refreshed), 1) /
                   (double) G_USEC_PER_SEC;
  GHashTable *tables[] = { stats->senders, stats->topics };

  stats_entry_update (&stats->total, seconds, overall);
  for (guint i = 0; i < G_N_ELEMENTS (tables); i++)
    {
      GHashTableIter iter;
      StatsEntry *entry;

      g_hash_table_iter_init (&iter, tables[i]);
      while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &entry))
        stats_entry_update (entry, seconds, overall);
    }
  stats->refreshed = now;
}

/* Busiest first: by rate, then by total, then by name. */
static int
stats_entry_compare (gconstpointer a,
                     gconstpointer b)
{
  const StatsEntry *x = *(StatsEntry * const *) a;
  const StatsEntry *y = *(StatsEntry * const *) b;

  if (x->frames_rate != y->frames_rate)
    return x->frames_rate < y->frames_rate ? 1 : -1;
  if (x->frames != y->frames)
    return x->frames < y->frames ? 1 : -1;
  return strcmp (x->name, y->name);
}

/* "512 B", "1.5 KiB": IEC units with a plain space, so that columns line
 * up (g_format_size() puts a no-break space there). */
static char *
format_bytes (double bytes)
{
  static const char * const units[] = { "KiB", "MiB", "GiB", "TiB" };
  guint i;

  if (bytes < 1024)
    return g_strdup_printf ("%.0f B", bytes);
  for (i = 0, bytes /= 1024; bytes >= 1024 && i + 1 < G_N_ELEMENTS (units); i++)
    bytes /= 1024;
  return g_strdup_printf ("%.1f %s", bytes, units[i]);
}

static int
terminal_columns (void)
{
  struct winsize size;

  if (ioctl (STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0)
    return size.ws_col;
  return 80;
}

/* Appends a line; on a live screen each line clears the rest of its row. */
static void
stats_line (GString    *out,
            gboolean    live,
            const char *format,
            ...) G_GNUC_PRINTF (3, 4);

static void
stats_line (GString    *out,
            gboolean    live,
            const char *format,
            ...)
{
  va_list args;

  va_start (args, format);
  g_string_append_vprintf (out, format, args);
  va_end (args);
  g_string_append (out, live ? "\033[K\n" : "\n");
}

static void
stats_table (GString    *out,
             Stats      *stats,
             GHashTable *table,
             const char *title,
             int         name_width)
{
  g_autoptr(GPtrArray) entries = g_ptr_array_sized_new (g_hash_table_size (table));
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, table);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (entries, value);
  g_ptr_array_sort (entries, stats_entry_compare);
  stats_line (out, stats->live, "%-*s %10s %12s %12s %12s", name_width + 2, title,
              _("events/s"), _("bytes/s"), _("events"), _("bytes"));
  for (guint i = 0; i < entries->len && i < (guint) opts.top; i++)
    {
      StatsEntry *entry = entries->pdata[i];
      g_autofree char *rate = format_bytes (entry->bytes_rate);
      g_autofree char *bytes = format_bytes (entry->bytes);
      g_autofree char *name = NULL;
      glong chars = g_utf8_strlen (entry->name, -1);

      if (chars > name_width)
        {
          g_autofree char *head = g_utf8_substring (entry->name, 0, name_width - 1);

          name = g_strconcat (head, "…", NULL);
          chars = name_width;
        }
      else
        name = g_strdup (entry->name);
      /* pad by characters, not bytes */
      stats_line (out, stats->live, "  %s%*s %10.1f %12s %12" G_GUINT64_FORMAT " %12s", name,
                  (int) (name_width - chars), "", entry->frames_rate, rate, entry->frames, bytes);
    }
  if (entries->len > (guint) opts.top)
    stats_line (out, stats->live, _("  (%u more)"), entries->len - opts.top);
  if (entries->len == 0)
    stats_line (out, stats->live, "  %s", _("(none)"));
}

/* The events per kind, on as many lines as @columns need. */
static void
stats_kinds (GString *out,
             Stats   *stats,
             int      columns)
{
  g_autoptr(GString) line = g_string_new ("  ");

  for (guint i = 0; i < N_KINDS; i++)
    {
      g_autofree char *item = g_strdup_printf ("%s %" G_GUINT64_FORMAT, kind_names[i],
                                               stats->by_kind[i]);

      if (line->len > 2 && (int) (line->len + 2 + strlen (item)) > columns - 1)
        {
          stats_line (out, stats->live, "%s", line->str);
          g_string_truncate (line, 2);
        }
      g_string_append_printf (line, "%s%s", line->len > 2 ? "  " : "", item);
    }
  stats_line (out, stats->live, "%s", line->str);
}

/* The whole view: live (home, redraw, clear below) or a plain summary;
 * the @final one (at the end, live or not) has the rates averaged over
 * the whole run. */
static GString *
stats_render (Stats      *stats,
              const char *path,
              gboolean    final)
{
  g_autoptr(GString) out = g_string_new (NULL);
  int columns = stats->live ? terminal_columns () : 80;
  int name_width = MAX (16, columns - 53);
  gint64 elapsed = (g_get_monotonic_time () - stats->started) / G_USEC_PER_SEC;
  g_autofree char *bytes = format_bytes (stats->total.bytes);
  g_autofree char *rate = format_bytes (stats->total.bytes_rate);
  g_autofree char *frames = g_strdup_printf ("%" G_GUINT64_FORMAT, stats->total.frames);

  if (stats->live)
    g_string_append (out, "\033[H");
  stats_line (out, stats->live, _("elbus-monitor %s — %02d:%02d:%02d%s"), path,
              (int) (elapsed / 3600), (int) (elapsed / 60 % 60), (int) (elapsed % 60),
              final ? "" : _(" — Ctrl+C stops"));
  stats_line (out, stats->live, "%s", "");
  /* the count as text: a G_GUINT64_FORMAT would cut the string for xgettext */
  if (final)
    stats_line (out, stats->live, _("events %s (%.1f/s on average), payload %s (%s/s on average)"),
                frames, stats->total.frames_rate, bytes, rate);
  else
    stats_line (out, stats->live, _("events %s (%.1f/s), payload %s (%s/s)"), frames,
                stats->total.frames_rate, bytes, rate);
  stats_kinds (out, stats, columns);
  stats_line (out, stats->live, "%s", "");
  stats_table (out, stats, stats->senders, _("traffic by sender"), name_width);
  stats_line (out, stats->live, "%s", "");
  stats_table (out, stats, stats->topics, _("publications by topic"), name_width);
  if (stats->live)
    g_string_append (out, "\033[J");

  return g_steal_pointer (&out);
}

/* ---- the monitor ------------------------------------------------------ */

/* Monitor.text is reused from event to event up to this size. */
#define TEXT_KEEP_SIZE 65536

typedef struct {
  GMainLoop     *loop;             /* (owned) */
  char          *path;             /* (owned): checked by elbus_tool_check_address() */
  ElbusClient   *client;           /* (owned) */
  ElbusRpcPeer  *peer;             /* (owned) */
  GCancellable  *cancellable;      /* (owned): the monitor.start call */
  gboolean       start_pending;    /* monitor.start not answered yet */
  gboolean       color;
  gboolean       lines;            /* human-readable lines on standard output */
  FILE          *pcap;             /* (owned) (nullable) */
  GByteArray    *record;           /* (owned) (nullable): with @pcap, a record's bytes */
  GString       *text;             /* (owned): an event's line or JSON */
  Stats         *stats;            /* (owned) (nullable) */
  guint64        n_events;
  gint64         last_event;       /* monotonic µs of the last event; 0 before */
  gint64         last_lag;         /* µs between its time and its arrival */
  gboolean       broker_shutdown;  /* .broker announced its shutdown */
  gboolean       finished;
  int            status;
  guint          flush_id;
  guint          duration_id;
  guint          stats_id;
} Monitor;

static void
monitor_finish (Monitor *self,
                int      status)
{
  if (self->finished)
    return;
  self->finished = TRUE;
  self->status = status;
  g_main_loop_quit (self->loop);
}

static const char *
output_name (Monitor *self,
             FILE    *out)
{
  return out == self->pcap && out != stdout ? opts.pcap : _("standard output");
}

/* The exit status a failed write to @out means: a reader that went away
 * (EPIPE: `elbus-monitor … | head`) ends the monitor quietly; any other
 * error is reported. */
static int
output_error (Monitor *self,
              FILE    *out,
              int      errsv)
{
  if (errsv == EPIPE)
    return EXIT_OK;
  return elbus_tool_fail (EXIT_ERROR, _("cannot write to %s: %s"), output_name (self, out),
                          g_strerror (errsv));
}

/* Flushes standard output and the capture; FALSE with *@status set when
 * that fails. */
static gboolean
monitor_flush (Monitor *self,
               int     *status)
{
  FILE *outs[] = { stdout, self->pcap };

  for (guint i = 0; i < G_N_ELEMENTS (outs); i++)
    if (outs[i] != NULL && fflush (outs[i]) != 0)
      {
        *status = output_error (self, outs[i], errno);
        return FALSE;
      }
  return TRUE;
}

static gboolean
flush_cb (gpointer user_data)
{
  Monitor *self = user_data;
  int status;

  self->flush_id = 0;
  if (!monitor_flush (self, &status))
    monitor_finish (self, status);
  return G_SOURCE_REMOVE;
}

/* Output is flushed once the loop has nothing else to do, so that a pipe
 * sees each line at once when traffic is light, and a burst is written in
 * a few large writes. */
static void
monitor_write (Monitor    *self,
               FILE       *out,
               const void *data,
               gsize       len)
{
  if (self->finished)
    return;
  if (fwrite (data, 1, len, out) != len)
    {
      monitor_finish (self, output_error (self, out, errno));
      return;
    }
  if (self->flush_id == 0)
    self->flush_id = g_idle_add_full (G_PRIORITY_DEFAULT_IDLE, flush_cb, self, NULL);
}

static void
monitor_event (Monitor *self,
               GBytes  *payload)
{
  g_auto(Event) ev = { 0 };
  g_autoptr(GError) error = NULL;

  if (!event_parse (payload, &ev, &error))
    {
      g_warning ("ignoring a malformed monitor event: %s", error->message);
      return;
    }
  if (!opts.announcements && event_is_announcement (&ev))
    return;

  if (self->stats != NULL)
    stats_add (self->stats, &ev);
  if (self->pcap != NULL)
    {
      pcap_record (&ev, self->record);
      monitor_write (self, self->pcap, self->record->data, self->record->len);
    }
  if (opts.json || self->lines)
    {
      g_string_truncate (self->text, 0);
      if (opts.json)
        event_append_json (self->text, &ev);
      else
        event_append_line (self->text, &ev, self->color);
      monitor_write (self, stdout, self->text->str, self->text->len);
      /* not keeping the room of an exceptionally long one */
      if (self->text->allocated_len > TEXT_KEEP_SIZE)
        {
          g_string_free (self->text, TRUE);
          self->text = g_string_sized_new (TEXT_KEEP_SIZE / 4);
        }
    }

  self->n_events++;
  self->last_event = g_get_monotonic_time ();
  self->last_lag = g_get_real_time () - ev.t / 1000;
  if (opts.count > 0 && self->n_events >= (guint64) opts.count)
    monitor_finish (self, EXIT_OK);
}

/* `.broker` announces its shutdown on .broker/warn before it closes. */
static void
monitor_warning (Monitor *self,
                 GBytes  *payload)
{
  g_autoptr(GVariant) map = elbus_msgpack_decode (payload, NULL);
  const char *what = NULL;

  if (map != NULL && g_variant_is_of_type (map, G_VARIANT_TYPE_VARDICT) &&
      g_variant_lookup (map, "s", "&s", &what) && g_str_equal (what, "shutdown"))
    self->broker_shutdown = TRUE;
}

static void
publication_cb (ElbusClient *client,
                ElbusFrame  *frame,
                gpointer     user_data)
{
  Monitor *self = user_data;
  const char *topic = elbus_frame_get_topic (frame);

  if (self->finished || g_strcmp0 (elbus_frame_get_sender (frame), BROKER_NAME) != 0)
    return;
  if (g_strcmp0 (topic, MONITOR_TOPIC) == 0)
    monitor_event (self, elbus_frame_get_payload (frame));
  else if (g_strcmp0 (topic, WARN_TOPIC) == 0)
    monitor_warning (self, elbus_frame_get_payload (frame));
}

static void
disconnected_cb (ElbusClient *client,
                 GError      *error,
                 gpointer     user_data)
{
  Monitor *self = user_data;
  int status;

  if (self->finished)
    return;
  /* the events before the message */
  if (!monitor_flush (self, &status))
    {
      monitor_finish (self, status);
      return;
    }
  if (self->broker_shutdown)
    elbus_tool_fail (EXIT_ERROR, _("the broker shut down"));
  else if (error != NULL && !g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_CLOSED))
    elbus_tool_fail (EXIT_ERROR, _("the broker closed the connection: %s"), error->message);
  else
    elbus_tool_fail (EXIT_ERROR, _("the broker closed the connection"));
  /* dropped while behind a stream of events: most likely our queue
   * overflowed (the broker says so only in its log) */
  if (!self->broker_shutdown && self->last_event > 0 &&
      g_get_monotonic_time () - self->last_event < G_USEC_PER_SEC &&
      self->last_lag > LAGGING_US)
    g_printerr (_("elbus-monitor: (the broker drops a monitor that cannot keep up with the "
                  "traffic: narrow it with --sender, --target, --topic, --kind or "
                  "--max-payload)\n"));
  monitor_finish (self, EXIT_ERROR);
}

static gboolean
duration_cb (gpointer user_data)
{
  Monitor *self = user_data;

  self->duration_id = 0;
  monitor_finish (self, EXIT_OK);
  return G_SOURCE_REMOVE;
}

static gboolean
stats_cb (gpointer user_data)
{
  Monitor *self = user_data;
  g_autoptr(GString) view = NULL;

  stats_update (self->stats, FALSE);
  view = stats_render (self->stats, self->path, FALSE);
  monitor_write (self, stdout, view->str, view->len);
  return G_SOURCE_CONTINUE;
}

static gboolean
signal_cb (gpointer user_data)
{
  monitor_finish (user_data, EXIT_OK);
  return G_SOURCE_CONTINUE;
}

static void
monitor_start_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Monitor *self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = elbus_rpc_peer_call_variant_finish (ELBUS_RPC_PEER (source),
                                                                  result, &error);

  self->start_pending = FALSE;
  if (self->finished)
    return;

  if (reply == NULL)
    {
      int status = EXIT_ERROR;

      if (g_error_matches (error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_METHOD_NOT_FOUND))
        {
          status = elbus_tool_fail (EXIT_REFUSED,
                                    _("the broker does not support monitoring (monitor.start "
                                      "is this project's extension; an original elbus broker "
                                      "does not have it)"));
        }
      else if (g_error_matches (error, ELBUS_RPC_ERROR, RPC_ERROR_ACCESS_DENIED))
        {
          status = elbus_tool_fail (EXIT_REFUSED,
                                    _("access denied: the broker's security policy does not "
                                      "allow “%s” to monitor"),
                                    elbus_client_get_name (self->client));
        }
      else if (g_error_matches (error, ELBUS_RPC_ERROR, ELBUS_RPC_ERROR_INVALID_PARAMS))
        {
          status = elbus_tool_fail (EXIT_USAGE, _("the broker rejected the filters: %s"),
                                    error->message);
        }
      else if (error->domain == ELBUS_ERROR && !elbus_client_is_connected (self->client))
        {
          /* disconnected_cb says it */
          return;
        }
      else
        {
          elbus_tool_fail (EXIT_ERROR, _("monitor.start failed: %s"), error->message);
        }
      monitor_finish (self, status);
      return;
    }

  if (!opts.quiet)
    g_printerr (_("elbus-monitor: monitoring %s as %s; Ctrl+C stops\n"), self->path,
                elbus_client_get_name (self->client));
  if (opts.duration > 0)
    self->duration_id = g_timeout_add ((guint) MIN (opts.duration * 1000, G_MAXUINT),
                                       duration_cb, self);
}

static gboolean
color_wanted (void)
{
  if (opts.color == NULL || g_str_equal (opts.color, "auto"))
    return g_getenv ("NO_COLOR") == NULL && g_log_writer_supports_color (STDOUT_FILENO);
  return g_str_equal (opts.color, "always");
}

static int
monitor_run (Monitor *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) filters = NULL;
  g_autofree char *name = NULL;
  guint sigint, sigterm;

  self->lines = !opts.json && !opts.stats && opts.pcap == NULL;
  self->text = g_string_sized_new (TEXT_KEEP_SIZE / 4);
  self->color = self->lines && color_wanted ();

  if (opts.pcap != NULL)
    {
      guint8 header[PCAP_FILE_HEADER_SIZE];

      pcap_file_header (header);
      self->pcap = g_str_equal (opts.pcap, "-") ? stdout : fopen (opts.pcap, "wb");
      if (self->pcap == NULL)
        return elbus_tool_fail (EXIT_ERROR, _("cannot open %s: %s"), opts.pcap,
                                g_strerror (errno));
      if (fwrite (header, 1, sizeof header, self->pcap) != sizeof header ||
          fflush (self->pcap) != 0)
        return output_error (self, self->pcap, errno);
      self->record = g_byte_array_new ();
    }

  name = opts.name != NULL ? g_strdup (opts.name)
                           : g_strdup_printf ("elbus-monitor.%s.%d", g_get_host_name (),
                                              (int) getpid ());
  self->client = g_initable_new (ELBUS_TYPE_CLIENT, NULL, &error, "address", self->path,
                                 "name", name, "timeout", opts.timeout, NULL);
  if (self->client == NULL && g_error_matches (error, ELBUS_ERROR, ELBUS_ERROR_ACCESS))
    return elbus_tool_fail (EXIT_REFUSED,
                            _("access denied: the broker's security policy refuses the name "
                              "“%s” (-n NAME picks another)"), name);
  if (self->client == NULL)
    {
      g_autofree char *message = elbus_tool_connect_error (self->path, error);

      return elbus_tool_fail (EXIT_ERROR, "%s", message);
    }

  g_signal_connect (self->client, "publication", G_CALLBACK (publication_cb), self);
  g_signal_connect (self->client, "disconnected", G_CALLBACK (disconnected_cb), self);
  self->peer = elbus_rpc_peer_new (self->client);

  if (opts.stats)
    {
      self->stats = stats_new (isatty (STDOUT_FILENO));
      if (self->stats->live)
        self->stats_id = g_timeout_add_seconds (1, stats_cb, self);
    }

  /* the statistics count lengths, not bytes */
  filters = g_variant_ref_sink (build_filters (opts.senders, opts.targets, opts.topics, opts.kinds,
                                               opts.max_payload != MAX_PAYLOAD_UNSET
                                               ? opts.max_payload
                                               : opts.stats && opts.pcap == NULL ? 0 : -1));
  self->cancellable = g_cancellable_new ();
  self->start_pending = TRUE;
  elbus_rpc_peer_call_variant_async (self->peer, BROKER_NAME, "monitor.start", filters,
                                     ELBUS_QOS_PROCESSED, opts.timeout, self->cancellable,
                                     monitor_start_cb, self);

  sigint = g_unix_signal_add (SIGINT, signal_cb, self);
  sigterm = g_unix_signal_add (SIGTERM, signal_cb, self);
  g_main_loop_run (self->loop);
  g_source_remove (sigint);
  g_source_remove (sigterm);

  /* let the pending call finish before its user data goes */
  g_cancellable_cancel (self->cancellable);
  while (self->start_pending)
    g_main_context_iteration (NULL, TRUE);

  g_clear_handle_id (&self->flush_id, g_source_remove);
  g_clear_handle_id (&self->duration_id, g_source_remove);
  g_clear_handle_id (&self->stats_id, g_source_remove);
  g_signal_handlers_disconnect_by_data (self->client, self);

  if (self->stats != NULL && self->status == EXIT_OK)
    {
      g_autoptr(GString) view = NULL;

      stats_update (self->stats, TRUE);
      view = stats_render (self->stats, self->path, TRUE);
      if (fwrite (view->str, 1, view->len, stdout) != view->len)
        self->status = output_error (self, stdout, errno);
    }
  if (self->status == EXIT_OK)
    monitor_flush (self, &self->status);
  else
    {
      /* whatever was written before the failure, no second message */
      fflush (stdout);
      if (self->pcap != NULL)
        fflush (self->pcap);
    }

  elbus_client_close (self->client);
  return self->status;
}

static void
monitor_clear (Monitor *self)
{
  g_clear_object (&self->peer);
  g_clear_object (&self->client);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->stats, stats_free);
  if (self->pcap != NULL && self->pcap != stdout)
    fclose (self->pcap);
  self->pcap = NULL;
  g_clear_pointer (&self->record, g_byte_array_unref);
  if (self->text != NULL)
    g_string_free (g_steal_pointer (&self->text), TRUE);
  g_clear_pointer (&self->loop, g_main_loop_unref);
  g_clear_pointer (&self->path, g_free);
}

/* ---- main ------------------------------------------------------------- */

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  Monitor monitor = { 0 };
  int status;

  elbus_tool_init_i18n ();
  g_set_prgname ("elbus-monitor");

  context = g_option_context_new (_("PATH — watch the traffic of an elbus broker"));
  g_option_context_add_main_entries (context, filter_entries, GETTEXT_PACKAGE);
  g_option_context_add_main_entries (context, main_entries, GETTEXT_PACKAGE);
  g_option_context_set_summary (context,
    _("Shows every message, broadcast, publication, subscription and client registration the "
      "broker at PATH (a UNIX socket path, HOST:PORT, or ws://HOST:PORT/PATH or "
      "wss://HOST:PORT/PATH for WebSocket, wss:// trusting the CA certificates in the file "
      "ELBUS_TLS_CA_FILE names, or else the system's) routes, one line each. The broker must "
      "support monitoring (elbusd of elbus-glib does). Filters of different options must all "
      "match; the masks of one option are alternatives; --count counts the events they let "
      "through. .broker's announcements of clients are left out (the reg and unreg events "
      "say the same) unless --announcements asks for them; --kind message,broadcast,publish "
      "shows only traffic."));
  g_option_context_set_description (context,
    _("Exit status: 0 when stopped by Ctrl+C, SIGTERM, --count or --duration; 1 when the "
      "broker cannot be reached, goes away or output fails; 2 for a bad command line or "
      "filters the broker rejects; 3 when the broker does not support monitoring or its "
      "policy does not allow it.\n"
      "\n"
      "Examples:\n"
      "  elbus-monitor /tmp/elbus.sock\n"
      "  elbus-monitor /tmp/elbus.sock -k message,broadcast,publish -c 20   (only traffic)\n"
      "  elbus-monitor /tmp/elbus.sock --kind publish --topic 'sensors/#' --json\n"
      "  elbus-monitor /tmp/elbus.sock --sender 'plant.*' --max-payload 64 --count 100\n"
      "  elbus-monitor /tmp/elbus.sock --pcap bus.pcap   (open it in Wireshark with "
      "elbus.lua)\n"
      "  elbus-monitor /tmp/elbus.sock --stats"));

  status = elbus_tool_parse_path_command_line (context, &argc, &argv, &opts.version,
                                               _("which broker? usage: elbus-monitor PATH [OPTION…]; see "
                                                 "elbus-monitor --help"));
  if (status >= 0)
    goto out;
  if (!check_options (&error))
    {
      status = elbus_tool_fail (EXIT_USAGE, "%s", error->message);
      goto out;
    }
  if (masks_name_broker (opts.senders) || masks_name_broker (opts.topics))
    opts.announcements = TRUE;

  monitor.path = elbus_tool_check_address (argv[1], FALSE, &error);
  if (monitor.path == NULL)
    {
      status = elbus_tool_fail (EXIT_USAGE, "%s", error->message);
      goto out;
    }

  elbus_tool_log_init ("elbus-monitor", ELBUS_TOOL_LOG_AUTO, opts.verbose);

  monitor.loop = g_main_loop_new (NULL, FALSE);
  status = monitor_run (&monitor);
  monitor_clear (&monitor);

out:
  options_clear ();
  g_clear_pointer (&local_time_cache.text, g_free);
  g_clear_pointer (&utc_time_cache.text, g_free);
  return status;
}
