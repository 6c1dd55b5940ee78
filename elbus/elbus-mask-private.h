/* SPDX-License-Identifier: MIT */
/*
 * Routing tries (docs/protocol.md section 4).
 *
 * ElbusNameTree holds registered client names split on '.', one value per
 * name, and answers broadcast masks ('?' = exactly one part, '*' = one or
 * more remaining parts, ends the mask).
 *
 * ElbusTopicTree holds subscription masks split on '/' ('+' = exactly one
 * level, '#' = one or more remaining levels, ends the mask), each with a set
 * of subscribers, and answers literal topics.
 *
 * Strings come as (pointer, length) and need not be NUL-terminated; the
 * trees copy what they keep. Matching allocates nothing. Match callbacks
 * must not modify the tree they are called from. Values and subscribers are
 * opaque: never dereferenced, never freed.
 *
 * _elbus_name_tree_match() reports each matching name's value exactly once.
 * _elbus_topic_tree_match() reports a subscriber once per matching mask, so
 * the same subscriber may come several times for one topic (say it holds
 * both `a/#` and `a/+`): the caller de-duplicates (e.g. a generation mark
 * per subscriber). Report order is unspecified.
 *
 * Subscribe/unsubscribe read a mask the same way: `a/#/b` is `a/#`.
 * _elbus_topic_tree_unsubscribe_all() costs the subscriber's own masks, not
 * the size of the tree.
 *
 * _elbus_name_mask_matches() and _elbus_topic_mask_matches() match one mask
 * against one literal string with the same rules, without a tree (the
 * security policy's allowed masks). See elbus-mask.c for the details of
 * each function.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef void (*ElbusMaskFunc) (gpointer value,
                               gpointer user_data);

typedef struct _ElbusNameTree ElbusNameTree;

ElbusNameTree *_elbus_name_tree_new      (void);
void           _elbus_name_tree_free     (ElbusNameTree *tree);
void           _elbus_name_tree_insert   (ElbusNameTree *tree,
                                          const char    *name,
                                          gsize          name_len,
                                          gpointer       value);
gboolean       _elbus_name_tree_remove   (ElbusNameTree *tree,
                                          const char    *name,
                                          gsize          name_len);
void           _elbus_name_tree_match    (ElbusNameTree *tree,
                                          const char    *mask,
                                          gsize          mask_len,
                                          ElbusMaskFunc  func,
                                          gpointer       user_data);
gboolean       _elbus_broadcast_mask_has_wildcards (const char *mask,
                                                    gsize       mask_len);

typedef struct _ElbusTopicTree ElbusTopicTree;

ElbusTopicTree *_elbus_topic_tree_new             (void);
void            _elbus_topic_tree_free            (ElbusTopicTree *tree);
gboolean        _elbus_topic_tree_subscribe       (ElbusTopicTree *tree,
                                                   const char     *mask,
                                                   gsize           mask_len,
                                                   gpointer        subscriber);
gboolean        _elbus_topic_tree_unsubscribe     (ElbusTopicTree *tree,
                                                   const char     *mask,
                                                   gsize           mask_len,
                                                   gpointer        subscriber);
guint           _elbus_topic_tree_unsubscribe_all (ElbusTopicTree *tree,
                                                   gpointer        subscriber);
guint           _elbus_topic_tree_count           (ElbusTopicTree *tree,
                                                   gpointer        subscriber);
void            _elbus_topic_tree_match           (ElbusTopicTree *tree,
                                                   const char     *topic,
                                                   gsize           topic_len,
                                                   ElbusMaskFunc   func,
                                                   gpointer        user_data);

/* consistency checks, for tests and fuzzing: NULL or what is wrong */
typedef void (*ElbusTreeCheckFunc) (const char *path,
                                    gpointer    value,
                                    gpointer    user_data);

const char     *_elbus_name_tree_check            (ElbusNameTree      *tree,
                                                   ElbusTreeCheckFunc  func,
                                                   gpointer            user_data);
const char     *_elbus_topic_tree_check           (ElbusTopicTree     *tree,
                                                   ElbusTreeCheckFunc  func,
                                                   gpointer            user_data);

gboolean        _elbus_name_mask_matches          (const char     *mask,
                                                   gsize           mask_len,
                                                   const char     *name,
                                                   gsize           name_len);
gboolean        _elbus_topic_mask_matches         (const char     *mask,
                                                   gsize           mask_len,
                                                   const char     *topic,
                                                   gsize           topic_len);
gboolean        _elbus_name_mask_covers           (const char     *mask,
                                                   gsize           mask_len,
                                                   const char     *other,
                                                   gsize           other_len);
gboolean        _elbus_topic_mask_covers          (const char     *mask,
                                                   gsize           mask_len,
                                                   const char     *other,
                                                   gsize           other_len);

G_END_DECLS
