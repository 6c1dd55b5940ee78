/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <string.h>

#include "elbus-codec-private.h"
#include "elbus-frame.h"

struct _ElbusFrame {
  gatomicrefcount  ref;
  ElbusFrameKind   kind;
  gboolean         realtime;
  char            *sender;          /* (owned) */
  char            *primary_sender;  /* (owned) (nullable): NULL when the sender is a primary */
  char            *topic;           /* (owned) (nullable) */
  GBytes          *payload;         /* (owned) */
};

G_DEFINE_BOXED_TYPE (ElbusFrame, elbus_frame, elbus_frame_ref, elbus_frame_unref)

/**
 * elbus_frame_new:
 * @kind: what the frame is
 * @sender: the full name of the client that sent it
 * @topic: (nullable): the topic, for a publication
 * @payload: (nullable): the payload; %NULL for an empty one
 * @realtime: whether the sender asked for real-time delivery
 *
 * Creates a frame. Clients make them for what they receive; this is for
 * tests and for code that replays traffic.
 *
 * Returns: (transfer full): a new frame
 *
 * Since: 1.0
 */
ElbusFrame *
elbus_frame_new (ElbusFrameKind  kind,
                 const char     *sender,
                 const char     *topic,
                 GBytes         *payload,
                 gboolean        realtime)
{
  ElbusFrame *frame;
  gsize primary_len;

  g_return_val_if_fail (sender != NULL, NULL);

  frame = g_new0 (ElbusFrame, 1);
  g_atomic_ref_count_init (&frame->ref);
  frame->kind = kind;
  frame->realtime = !!realtime;
  frame->sender = g_strdup (sender);
  if (_elbus_codec_split_secondary (sender, strlen (sender), &primary_len))
    frame->primary_sender = g_strndup (sender, primary_len);
  frame->topic = g_strdup (topic);
  frame->payload = payload != NULL ? g_bytes_ref (payload) : g_bytes_new_static ("", 0);

  return frame;
}

/**
 * elbus_frame_ref:
 * @frame: a frame
 *
 * Takes a reference to @frame.
 *
 * Returns: (transfer full): @frame
 *
 * Since: 1.0
 */
ElbusFrame *
elbus_frame_ref (ElbusFrame *frame)
{
  g_return_val_if_fail (frame != NULL, NULL);

  g_atomic_ref_count_inc (&frame->ref);
  return frame;
}

/**
 * elbus_frame_unref:
 * @frame: (transfer full): a frame
 *
 * Drops a reference to @frame, freeing it when it was the last.
 *
 * Since: 1.0
 */
void
elbus_frame_unref (ElbusFrame *frame)
{
  g_return_if_fail (frame != NULL);

  if (!g_atomic_ref_count_dec (&frame->ref))
    return;

  g_free (frame->sender);
  g_free (frame->primary_sender);
  g_free (frame->topic);
  g_bytes_unref (frame->payload);
  g_free (frame);
}

/**
 * elbus_frame_get_kind:
 * @frame: a frame
 *
 * Gets what @frame is: a message, a broadcast or a publication.
 *
 * Returns: the kind
 *
 * Since: 1.0
 */
ElbusFrameKind
elbus_frame_get_kind (ElbusFrame *frame)
{
  g_return_val_if_fail (frame != NULL, 0);

  return frame->kind;
}

/**
 * elbus_frame_get_sender:
 * @frame: a frame
 *
 * Gets the full name of the client that sent @frame, with any `%%`
 * suffix of a secondary client.
 *
 * Returns: (transfer none): the sender
 *
 * Since: 1.0
 */
const char *
elbus_frame_get_sender (ElbusFrame *frame)
{
  g_return_val_if_fail (frame != NULL, NULL);

  return frame->sender;
}

/**
 * elbus_frame_get_primary_sender:
 * @frame: a frame
 *
 * Gets the name of the primary client behind the sender: the part of the
 * sender's name before `%%`, or the whole name for a primary client.
 *
 * Returns: (transfer none): the primary sender
 *
 * Since: 1.0
 */
const char *
elbus_frame_get_primary_sender (ElbusFrame *frame)
{
  g_return_val_if_fail (frame != NULL, NULL);

  return frame->primary_sender != NULL ? frame->primary_sender : frame->sender;
}

/**
 * elbus_frame_get_topic:
 * @frame: a frame
 *
 * Gets the topic of a publication.
 *
 * Returns: (transfer none) (nullable): the topic, or %NULL for a message
 *   or a broadcast
 *
 * Since: 1.0
 */
const char *
elbus_frame_get_topic (ElbusFrame *frame)
{
  g_return_val_if_fail (frame != NULL, NULL);

  return frame->topic;
}

/**
 * elbus_frame_get_payload:
 * @frame: a frame
 *
 * Gets the payload of @frame.
 *
 * Returns: (transfer none): the payload, possibly empty
 *
 * Since: 1.0
 */
GBytes *
elbus_frame_get_payload (ElbusFrame *frame)
{
  g_return_val_if_fail (frame != NULL, NULL);

  return frame->payload;
}

/**
 * elbus_frame_is_realtime:
 * @frame: a frame
 *
 * Tells whether the sender asked for real-time delivery
 * (%ELBUS_QOS_REALTIME or %ELBUS_QOS_REALTIME_PROCESSED).
 *
 * Returns: %TRUE for a real-time frame
 *
 * Since: 1.0
 */
gboolean
elbus_frame_is_realtime (ElbusFrame *frame)
{
  g_return_val_if_fail (frame != NULL, FALSE);

  return frame->realtime;
}
