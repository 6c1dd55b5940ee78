/* SPDX-License-Identifier: MIT */
/*
 * Routing tries for broadcasts and publications (docs/protocol.md section 4).
 *
 * Both trees are tries of MaskNode, one node per name part or topic level.
 * A node owns a copy of its part and keeps its literal children in a doubly
 * linked sibling list; once it has more than CHILDREN_HASH_MIN children it
 * also indexes them in a GHashTable keyed by (pointer, length), so a lookup
 * never needs a NUL-terminated copy of the part it looks for.
 *
 * ElbusNameTree: the trie holds literal client names, the broadcast mask
 * holds the wildcards. A `?` part walks a node's sibling list, a `*` part
 * walks a whole subtree; a plain part is one child lookup.
 *
 * ElbusTopicTree: the trie holds subscription masks, the topic is literal.
 * A `+` level is a node's `one` child and a `#` level its `rest` child (a
 * leaf: `#` ends a mask). A node reached by a mask holds an array of
 * Subscription, one per subscriber; each subscriber also has a table
 * node -> Subscription, so that dropping a subscriber only touches its own
 * masks. Nodes left with no subscription and no child are pruned at once.
 *
 * A publication visits, for each topic level, the literal child and the `+`
 * child of each node reached so far and reports the `#` leaves on the way:
 * its cost follows the depth of the topic and the wildcard branches, not
 * the number of subscriptions.
 *
 * Matching uses an explicit work stack kept on the C stack (moved to the
 * heap only past WORK_STACK_PREALLOC pending wildcard branches), so it
 * allocates nothing in practice and a hostile mask thousands of levels deep
 * cannot overflow the call stack. Freeing is iterative for the same reason.
 *
 * _elbus_name_mask_matches() and _elbus_topic_mask_matches() need no tree:
 * they walk one mask and one literal string side by side, part by part.
 */

#include <glib.h>
#include <string.h>

#include "elbus-mask-private.h"

/* A node indexes its literal children in a hash table above this many. */
#define CHILDREN_HASH_MIN 8
/* ... and drops the index again below this many. */
#define CHILDREN_HASH_DROP 4

#define WORK_STACK_PREALLOC 32

/* A part of a name, a mask or a topic: not NUL-terminated. */
typedef struct
{
  const char *str;
  gsize       len;
} MaskPart;

typedef struct _MaskNode MaskNode;

struct _MaskNode
{
  MaskPart    key;          /* must come first: the node is its own hash key;
                             * key.str points to part[] below */
  MaskNode   *parent;       /* (unowned) (nullable): NULL for the root */
  MaskNode   *first_child;  /* (owned) (nullable): literal children */
  MaskNode   *prev;         /* (unowned) (nullable): sibling */
  MaskNode   *next;         /* (unowned) (nullable): sibling */
  GHashTable *children;     /* (owned) (nullable): MaskPart * -> MaskNode *,
                             * the same nodes as the list, present only
                             * when there are many */
  guint       n_children;   /* length of the literal children list */

  /* ElbusNameTree */
  gboolean    has_value;    /* a name ends here */
  gpointer    value;        /* (unowned) */

  /* ElbusTopicTree */
  MaskNode   *one;          /* (owned) (nullable): the `+` child */
  MaskNode   *rest;         /* (owned) (nullable): the `#` child, a leaf */
  GPtrArray  *subs;         /* (owned) (nullable) (element-type Subscription):
                             * masks ending here; never empty */

  char        part[];       /* NUL-terminated copy of the part */
};

typedef struct
{
  MaskNode *node;        /* (unowned) */
  gpointer  subscriber;  /* (unowned) */
  guint     index;       /* position in node->subs */
} Subscription;

struct _ElbusNameTree
{
  MaskNode *root;  /* (owned): matches no part, never holds a value */
};

struct _ElbusTopicTree
{
  MaskNode   *root;         /* (owned): matches no level, never subscribed */
  GHashTable *subscribers;  /* (owned): subscriber -> (owned) GHashTable of
                             * MaskNode * -> (owned) Subscription * */
};

/* Parts */

/* Returns the length of the part starting at @pos and sets @next to the
 * start of the following part, or to NULL when this part is the last. */
static inline gsize
part_next (const char  *pos,
           const char  *end,
           char         sep,
           const char **next)
{
  const char *found = memchr (pos, sep, end - pos);

  if (found == NULL)
    {
      *next = NULL;
      return end - pos;
    }

  *next = found + 1;
  return found - pos;
}

static inline gboolean
part_is (const char *part,
         gsize       part_len,
         char        c)
{
  return part_len == 1 && part[0] == c;
}

static guint
mask_part_hash (gconstpointer key)
{
  const MaskPart *part = key;
  guint32 h = 5381;
  gsize i;

  for (i = 0; i < part->len; i++)
    h = (h << 5) + h + (guchar) part->str[i];

  return h;
}

static gboolean
mask_part_equal (gconstpointer a,
                 gconstpointer b)
{
  const MaskPart *pa = a;
  const MaskPart *pb = b;

  return pa->len == pb->len && memcmp (pa->str, pb->str, pa->len) == 0;
}

/* Nodes */

static MaskNode *
node_new (MaskNode   *parent,
          const char *part,
          gsize       part_len)
{
  MaskNode *node = g_malloc0 (sizeof (MaskNode) + part_len + 1);

  memcpy (node->part, part, part_len);
  node->part[part_len] = '\0';
  node->key.str = node->part;
  node->key.len = part_len;
  node->parent = parent;

  return node;
}

static void
node_free (MaskNode *node)
{
  g_assert (node->first_child == NULL && node->one == NULL && node->rest == NULL);
  g_assert (node->subs == NULL);

  g_clear_pointer (&node->children, g_hash_table_unref);
  g_free (node);
}

static gboolean
node_is_empty (const MaskNode *node)
{
  return !node->has_value &&
         node->subs == NULL &&
         node->first_child == NULL &&
         node->one == NULL &&
         node->rest == NULL;
}

static MaskNode *
node_lookup_child (const MaskNode *node,
                   const char     *part,
                   gsize           part_len)
{
  MaskNode *child;

  if (node->children != NULL)
    {
      MaskPart key = { part, part_len };

      return g_hash_table_lookup (node->children, &key);
    }

  for (child = node->first_child; child != NULL; child = child->next)
    {
      if (child->key.len == part_len && memcmp (child->key.str, part, part_len) == 0)
        return child;
    }

  return NULL;
}

static MaskNode *
node_add_child (MaskNode   *node,
                const char *part,
                gsize       part_len)
{
  MaskNode *child = node_new (node, part, part_len);

  child->next = node->first_child;
  if (node->first_child != NULL)
    node->first_child->prev = child;
  node->first_child = child;
  node->n_children++;

  if (node->children != NULL)
    {
      g_hash_table_add (node->children, child);
    }
  else if (node->n_children > CHILDREN_HASH_MIN)
    {
      MaskNode *sibling;

      node->children = g_hash_table_new (mask_part_hash, mask_part_equal);
      for (sibling = node->first_child; sibling != NULL; sibling = sibling->next)
        g_hash_table_add (node->children, sibling);
    }

  return child;
}

static MaskNode *
node_ensure_child (MaskNode   *node,
                   const char *part,
                   gsize       part_len)
{
  MaskNode *child = node_lookup_child (node, part, part_len);

  if (child == NULL)
    child = node_add_child (node, part, part_len);

  return child;
}

/* Detaches @node from its parent, which keeps no reference to it. */
static void
node_unlink (MaskNode *node)
{
  MaskNode *parent = node->parent;

  if (parent->one == node)
    {
      parent->one = NULL;
    }
  else if (parent->rest == node)
    {
      parent->rest = NULL;
    }
  else
    {
      if (node->prev != NULL)
        node->prev->next = node->next;
      else
        parent->first_child = node->next;
      if (node->next != NULL)
        node->next->prev = node->prev;
      node->prev = node->next = NULL;
      parent->n_children--;

      if (parent->children != NULL)
        {
          if (parent->n_children < CHILDREN_HASH_DROP)
            g_clear_pointer (&parent->children, g_hash_table_unref);
          else
            g_hash_table_remove (parent->children, &node->key);
        }
    }

  node->parent = NULL;
}

/* Frees @node and then each ancestor that is left empty, up to the root. */
static void
node_prune (MaskNode *node)
{
  while (node->parent != NULL && node_is_empty (node))
    {
      MaskNode *parent = node->parent;

      node_unlink (node);
      node_free (node);
      node = parent;
    }
}

/* Frees @root and everything below it, without recursion. The caller has
 * already freed the subscriptions. */
static void
node_free_all (MaskNode *root)
{
  MaskNode *node = root;

  while (node != NULL)
    {
      MaskNode *child;

      /* The lookup index is not needed to take the tree apart. */
      g_clear_pointer (&node->children, g_hash_table_unref);
      g_clear_pointer (&node->subs, g_ptr_array_unref);

      if (node->first_child != NULL)
        child = node->first_child;
      else if (node->one != NULL)
        child = node->one;
      else
        child = node->rest;

      if (child != NULL)
        {
          node = child;
        }
      else
        {
          MaskNode *parent = node->parent;

          if (parent != NULL)
            node_unlink (node);
          node_free (node);
          node = parent;
        }
    }
}

/* Work stack for matching: pending (node, position) pairs. Pending items
 * always sit at strictly increasing depths, so there are never more of them
 * than parts in the mask or topic being matched. */

typedef struct
{
  MaskNode   *node;
  const char *pos;
} WorkItem;

typedef struct
{
  WorkItem *items;
  gsize     len;
  gsize     size;
  WorkItem  prealloc[WORK_STACK_PREALLOC];
} WorkStack;

static inline void
work_stack_init (WorkStack *stack)
{
  stack->items = stack->prealloc;
  stack->len = 0;
  stack->size = G_N_ELEMENTS (stack->prealloc);
}

static void
work_stack_grow (WorkStack *stack)
{
  gsize size = stack->size * 2;

  if (stack->items == stack->prealloc)
    {
      stack->items = g_new (WorkItem, size);
      memcpy (stack->items, stack->prealloc, sizeof (stack->prealloc));
    }
  else
    {
      stack->items = g_renew (WorkItem, stack->items, size);
    }

  stack->size = size;
}

static inline void
work_stack_push (WorkStack  *stack,
                 MaskNode   *node,
                 const char *pos)
{
  if (G_UNLIKELY (stack->len == stack->size))
    work_stack_grow (stack);

  stack->items[stack->len].node = node;
  stack->items[stack->len].pos = pos;
  stack->len++;
}

static inline void
work_stack_clear (WorkStack *stack)
{
  if (stack->items != stack->prealloc)
    g_free (stack->items);
}

/* ElbusNameTree */

/**
 * _elbus_name_tree_new:
 *
 * Creates an empty tree of client names.
 *
 * Returns: (transfer full): a new tree; free with _elbus_name_tree_free()
 */
ElbusNameTree *
_elbus_name_tree_new (void)
{
  ElbusNameTree *tree = g_new0 (ElbusNameTree, 1);

  tree->root = node_new (NULL, "", 0);

  return tree;
}

/**
 * _elbus_name_tree_free:
 * @tree: (transfer full) (nullable): a tree
 *
 * Frees @tree. The values it holds are not touched.
 */
void
_elbus_name_tree_free (ElbusNameTree *tree)
{
  if (tree == NULL)
    return;

  node_free_all (tree->root);
  g_free (tree);
}

/**
 * _elbus_name_tree_insert:
 * @tree: a tree
 * @name: (array length=name_len): a client name, not necessarily
 *   NUL-terminated; parts are separated by `.` and taken literally
 * @name_len: the length of @name in bytes
 * @value: (nullable): the value to report for @name
 *
 * Maps @name to @value, replacing the value @name had, if any.
 */
void
_elbus_name_tree_insert (ElbusNameTree *tree,
                         const char    *name,
                         gsize          name_len,
                         gpointer       value)
{
  const char *end;
  const char *pos;
  MaskNode *node;

  g_return_if_fail (tree != NULL);
  g_return_if_fail (name != NULL || name_len == 0);

  if (name == NULL)
    name = "";

  end = name + name_len;
  node = tree->root;
  pos = name;
  while (pos != NULL)
    {
      const char *next;
      gsize part_len = part_next (pos, end, '.', &next);

      node = node_ensure_child (node, pos, part_len);
      pos = next;
    }

  node->has_value = TRUE;
  node->value = value;
}

static MaskNode *
name_tree_lookup (ElbusNameTree *tree,
                  const char    *name,
                  gsize          name_len)
{
  const char *end = name + name_len;
  const char *pos = name;
  MaskNode *node = tree->root;

  while (pos != NULL && node != NULL)
    {
      const char *next;
      gsize part_len = part_next (pos, end, '.', &next);

      node = node_lookup_child (node, pos, part_len);
      pos = next;
    }

  return node;
}

/**
 * _elbus_name_tree_remove:
 * @tree: a tree
 * @name: (array length=name_len): a client name, not necessarily
 *   NUL-terminated
 * @name_len: the length of @name in bytes
 *
 * Removes @name from @tree.
 *
 * Returns: %TRUE if @name was in @tree
 */
gboolean
_elbus_name_tree_remove (ElbusNameTree *tree,
                         const char    *name,
                         gsize          name_len)
{
  MaskNode *node;

  g_return_val_if_fail (tree != NULL, FALSE);
  g_return_val_if_fail (name != NULL || name_len == 0, FALSE);

  if (name == NULL)
    name = "";

  node = name_tree_lookup (tree, name, name_len);
  if (node == NULL || !node->has_value)
    return FALSE;

  node->has_value = FALSE;
  node->value = NULL;
  node_prune (node);

  return TRUE;
}

/* Reports every value strictly below @top. */
static void
name_node_report_below (MaskNode      *top,
                        ElbusMaskFunc  func,
                        gpointer       user_data)
{
  MaskNode *node = top->first_child;

  while (node != NULL)
    {
      if (node->has_value)
        func (node->value, user_data);

      if (node->first_child != NULL)
        {
          node = node->first_child;
        }
      else
        {
          while (node != top && node->next == NULL)
            node = node->parent;
          node = node == top ? NULL : node->next;
        }
    }
}

/**
 * _elbus_name_tree_match:
 * @tree: a tree
 * @mask: (array length=mask_len): a broadcast mask, not necessarily
 *   NUL-terminated
 * @mask_len: the length of @mask in bytes
 * @func: (scope call): called with the value of each matching name
 * @user_data: data for @func
 *
 * Calls @func once for each name in @tree that @mask matches, in no
 * particular order. The mask is split on `.`: a part that is exactly `?`
 * matches any one part (an empty one too); a part that is exactly `*`
 * matches one or more parts and ends the mask (`a.*.b` acts as `a.*`);
 * any other part matches itself. @func must not modify @tree.
 *
 * Allocates nothing (short of more than 32 nested `?` branches).
 */
void
_elbus_name_tree_match (ElbusNameTree *tree,
                        const char    *mask,
                        gsize          mask_len,
                        ElbusMaskFunc  func,
                        gpointer       user_data)
{
  const char *end;
  WorkStack stack;

  g_return_if_fail (tree != NULL);
  g_return_if_fail (mask != NULL || mask_len == 0);
  g_return_if_fail (func != NULL);

  if (mask == NULL)
    mask = "";
  end = mask + mask_len;

  /* An item is a node that matched the mask up to pos (NULL: the whole
   * mask), as did all of its next siblings: that is how a `?` part fans
   * out. The root has no siblings. */
  work_stack_init (&stack);
  work_stack_push (&stack, tree->root, mask);

  while (stack.len > 0)
    {
      WorkItem *top = &stack.items[stack.len - 1];
      MaskNode *node = top->node;
      const char *pos = top->pos;

      if (node->next != NULL)
        top->node = node->next;
      else
        stack.len--;

      while (node != NULL)
        {
          const char *next;
          gsize part_len;

          if (pos == NULL)
            {
              if (node->has_value)
                func (node->value, user_data);
              break;
            }

          part_len = part_next (pos, end, '.', &next);

          if (part_is (pos, part_len, '*'))
            {
              name_node_report_below (node, func, user_data);
              break;
            }

          if (part_is (pos, part_len, '?'))
            {
              if (next == NULL)
                {
                  MaskNode *child;

                  for (child = node->first_child; child != NULL; child = child->next)
                    {
                      if (child->has_value)
                        func (child->value, user_data);
                    }
                }
              else if (node->first_child != NULL)
                {
                  work_stack_push (&stack, node->first_child, next);
                }
              break;
            }

          node = node_lookup_child (node, pos, part_len);
          pos = next;
        }
    }

  work_stack_clear (&stack);
}

/**
 * _elbus_broadcast_mask_has_wildcards:
 * @mask: (array length=mask_len): a broadcast mask, not necessarily
 *   NUL-terminated
 * @mask_len: the length of @mask in bytes
 *
 * Tells whether a part of @mask is exactly `?` or `*`. A mask without
 * wildcards matches only the name equal to it, so a caller may look it up
 * directly instead of calling _elbus_name_tree_match().
 *
 * Returns: %TRUE if @mask has a wildcard part
 */
gboolean
_elbus_broadcast_mask_has_wildcards (const char *mask,
                                     gsize       mask_len)
{
  const char *end;
  const char *pos;

  g_return_val_if_fail (mask != NULL || mask_len == 0, FALSE);

  if (mask == NULL)
    return FALSE;

  end = mask + mask_len;
  pos = mask;
  while (pos != NULL)
    {
      const char *next;
      gsize part_len = part_next (pos, end, '.', &next);

      if (part_is (pos, part_len, '?') || part_is (pos, part_len, '*'))
        return TRUE;
      pos = next;
    }

  return FALSE;
}

/* ElbusTopicTree */

/**
 * _elbus_topic_tree_new:
 *
 * Creates an empty tree of subscriptions.
 *
 * Returns: (transfer full): a new tree; free with _elbus_topic_tree_free()
 */
ElbusTopicTree *
_elbus_topic_tree_new (void)
{
  ElbusTopicTree *tree = g_new0 (ElbusTopicTree, 1);

  tree->root = node_new (NULL, "", 0);
  tree->subscribers = g_hash_table_new_full (NULL, NULL, NULL,
                                             (GDestroyNotify) g_hash_table_unref);

  return tree;
}

/**
 * _elbus_topic_tree_free:
 * @tree: (transfer full) (nullable): a tree
 *
 * Frees @tree and all its subscriptions. The subscribers are not touched.
 */
void
_elbus_topic_tree_free (ElbusTopicTree *tree)
{
  GHashTableIter iter;
  gpointer subs_table;

  if (tree == NULL)
    return;

  g_hash_table_iter_init (&iter, tree->subscribers);
  while (g_hash_table_iter_next (&iter, NULL, &subs_table))
    {
      GHashTableIter sub_iter;
      gpointer sub;

      g_hash_table_iter_init (&sub_iter, subs_table);
      while (g_hash_table_iter_next (&sub_iter, NULL, &sub))
        g_free (sub);
    }
  g_hash_table_unref (tree->subscribers);

  node_free_all (tree->root);
  g_free (tree);
}

/* Returns the node where @mask ends, creating the missing nodes if @create;
 * or NULL. Anything after a `#` level is ignored. */
static MaskNode *
topic_tree_lookup_mask (ElbusTopicTree *tree,
                        const char     *mask,
                        gsize           mask_len,
                        gboolean        create)
{
  const char *end = mask + mask_len;
  const char *pos = mask;
  MaskNode *node = tree->root;

  while (pos != NULL && node != NULL)
    {
      const char *next;
      gsize part_len = part_next (pos, end, '/', &next);

      if (part_is (pos, part_len, '#'))
        {
          if (node->rest == NULL && create)
            node->rest = node_new (node, pos, part_len);
          node = node->rest;
          break;
        }
      else if (part_is (pos, part_len, '+'))
        {
          if (node->one == NULL && create)
            node->one = node_new (node, pos, part_len);
          node = node->one;
        }
      else if (create)
        {
          node = node_ensure_child (node, pos, part_len);
        }
      else
        {
          node = node_lookup_child (node, pos, part_len);
        }

      pos = next;
    }

  return node;
}

/* Frees @sub, which the caller has removed from its subscriber's table,
 * and prunes the tree above it. */
static void
subscription_free (Subscription *sub)
{
  MaskNode *node = sub->node;
  Subscription *last = g_ptr_array_index (node->subs, node->subs->len - 1);

  g_assert (g_ptr_array_index (node->subs, sub->index) == sub);

  g_ptr_array_remove_index_fast (node->subs, sub->index);
  last->index = sub->index;
  g_free (sub);

  if (node->subs->len == 0)
    {
      g_clear_pointer (&node->subs, g_ptr_array_unref);
      node_prune (node);
    }
}

/**
 * _elbus_topic_tree_subscribe:
 * @tree: a tree
 * @mask: (array length=mask_len): a subscription mask, not necessarily
 *   NUL-terminated
 * @mask_len: the length of @mask in bytes
 * @subscriber: (nullable): the subscriber
 *
 * Subscribes @subscriber to @mask. The mask is split on `/`: a level that
 * is exactly `+` matches any one level (an empty one too); a level that is
 * exactly `#` matches one or more levels and ends the mask (`a/#/b` is
 * stored as `a/#`); any other level matches itself. The empty mask is one
 * empty level. A (mask, subscriber) pair is stored once.
 *
 * Returns: %TRUE if the subscription is new, %FALSE if it was there
 */
gboolean
_elbus_topic_tree_subscribe (ElbusTopicTree *tree,
                             const char     *mask,
                             gsize           mask_len,
                             gpointer        subscriber)
{
  GHashTable *subs_table;
  Subscription *sub;
  MaskNode *node;

  g_return_val_if_fail (tree != NULL, FALSE);
  g_return_val_if_fail (mask != NULL || mask_len == 0, FALSE);

  if (mask == NULL)
    mask = "";

  node = topic_tree_lookup_mask (tree, mask, mask_len, TRUE);

  subs_table = g_hash_table_lookup (tree->subscribers, subscriber);
  if (subs_table == NULL)
    {
      subs_table = g_hash_table_new (NULL, NULL);
      g_hash_table_insert (tree->subscribers, subscriber, subs_table);
    }
  else if (g_hash_table_contains (subs_table, node))
    {
      return FALSE;
    }

  sub = g_new (Subscription, 1);
  sub->node = node;
  sub->subscriber = subscriber;
  if (node->subs == NULL)
    node->subs = g_ptr_array_new ();
  sub->index = node->subs->len;
  g_ptr_array_add (node->subs, sub);
  g_hash_table_insert (subs_table, node, sub);

  return TRUE;
}

/**
 * _elbus_topic_tree_unsubscribe:
 * @tree: a tree
 * @mask: (array length=mask_len): a subscription mask, not necessarily
 *   NUL-terminated; read as _elbus_topic_tree_subscribe() does, so
 *   `a/#` removes `a/#/b` and the other way round
 * @mask_len: the length of @mask in bytes
 * @subscriber: (nullable): the subscriber
 *
 * Unsubscribes @subscriber from @mask.
 *
 * Returns: %TRUE if @subscriber was subscribed to @mask
 */
gboolean
_elbus_topic_tree_unsubscribe (ElbusTopicTree *tree,
                               const char     *mask,
                               gsize           mask_len,
                               gpointer        subscriber)
{
  GHashTable *subs_table;
  Subscription *sub;
  MaskNode *node;

  g_return_val_if_fail (tree != NULL, FALSE);
  g_return_val_if_fail (mask != NULL || mask_len == 0, FALSE);

  if (mask == NULL)
    mask = "";

  node = topic_tree_lookup_mask (tree, mask, mask_len, FALSE);
  if (node == NULL)
    return FALSE;

  subs_table = g_hash_table_lookup (tree->subscribers, subscriber);
  if (subs_table == NULL)
    return FALSE;

  sub = g_hash_table_lookup (subs_table, node);
  if (sub == NULL)
    return FALSE;

  g_hash_table_remove (subs_table, node);
  if (g_hash_table_size (subs_table) == 0)
    g_hash_table_remove (tree->subscribers, subscriber);

  subscription_free (sub);

  return TRUE;
}

/**
 * _elbus_topic_tree_unsubscribe_all:
 * @tree: a tree
 * @subscriber: (nullable): the subscriber
 *
 * Removes every subscription of @subscriber, at a cost proportional to
 * their number.
 *
 * Returns: how many masks @subscriber was subscribed to
 */
guint
_elbus_topic_tree_unsubscribe_all (ElbusTopicTree *tree,
                                   gpointer        subscriber)
{
  GHashTable *subs_table;
  GHashTableIter iter;
  gpointer sub;
  guint n;

  g_return_val_if_fail (tree != NULL, 0);

  if (!g_hash_table_steal_extended (tree->subscribers, subscriber,
                                    NULL, (gpointer *) &subs_table))
    return 0;

  /* Pruning cannot free a node still in subs_table: it holds a
   * subscription. */
  n = g_hash_table_size (subs_table);
  g_hash_table_iter_init (&iter, subs_table);
  while (g_hash_table_iter_next (&iter, NULL, &sub))
    subscription_free (sub);
  g_hash_table_unref (subs_table);

  return n;
}

/**
 * _elbus_topic_tree_count:
 * @tree: a tree
 * @subscriber: (nullable): the subscriber
 *
 * Returns: how many masks @subscriber is subscribed to
 */
guint
_elbus_topic_tree_count (ElbusTopicTree *tree,
                         gpointer        subscriber)
{
  GHashTable *subs_table;

  g_return_val_if_fail (tree != NULL, 0);

  subs_table = g_hash_table_lookup (tree->subscribers, subscriber);

  return subs_table != NULL ? g_hash_table_size (subs_table) : 0;
}

/* Consistency checks (fuzzing and tests) */

/* The path from the root down to @node, its parts joined by @sep. */
static void
node_path (const MaskNode *node,
           char            sep,
           GString        *out)
{
  g_string_truncate (out, 0);
  for (const MaskNode *last = node; node->parent != NULL; node = node->parent)
    {
      if (node != last)
        g_string_prepend_c (out, sep);
      g_string_prepend_len (out, node->key.str, node->key.len);
    }
}

/* Checks the links of @node and its children; NULL when they hold. */
static const char *
node_check_links (const MaskNode *node)
{
  const MaskNode *child, *prev = NULL;
  guint n = 0;

  if (node->parent != NULL && node_is_empty (node))
    return "an empty node was not pruned";
  for (child = node->first_child; child != NULL; prev = child, child = child->next)
    {
      if (child->parent != node || child->prev != prev)
        return "a child's parent or sibling link is wrong";
      if (node->children != NULL && g_hash_table_lookup (node->children, &child->key) != child)
        return "a child is missing from its parent's index";
      n++;
    }
  if (n != node->n_children)
    return "a node's child count is wrong";
  if (node->children != NULL && g_hash_table_size (node->children) != n)
    return "a node's child index has stale entries";
  if (node->children == NULL && n > CHILDREN_HASH_MIN)
    return "a node with many children has no index";
  if ((node->one != NULL && node->one->parent != node) ||
      (node->rest != NULL && node->rest->parent != node))
    return "a wildcard child's parent link is wrong";
  if (node->rest != NULL &&
      (node->rest->first_child != NULL || node->rest->one != NULL || node->rest->rest != NULL))
    return "a `#` node has children";
  if (node->subs != NULL && node->subs->len == 0)
    return "a node keeps an empty subscription array";
  return NULL;
}

typedef const char *(*NodeCheckFunc) (const MaskNode *node,
                                      gpointer        data);

/* Visits every node below @root, depth first and without recursion, and
 * checks its links and then @func; returns the first problem found. */
static const char *
tree_check (const MaskNode *root,
            NodeCheckFunc   func,
            gpointer        data)
{
  g_autoptr(GPtrArray) stack = g_ptr_array_new ();
  const char *problem = NULL;

  g_ptr_array_add (stack, (gpointer) root);
  while (stack->len > 0 && problem == NULL)
    {
      const MaskNode *node = g_ptr_array_steal_index (stack, stack->len - 1);
      const MaskNode *child;

      problem = node_check_links (node);
      if (problem == NULL)
        problem = func (node, data);
      for (child = node->first_child; child != NULL; child = child->next)
        g_ptr_array_add (stack, (gpointer) child);
      if (node->one != NULL)
        g_ptr_array_add (stack, node->one);
      if (node->rest != NULL)
        g_ptr_array_add (stack, node->rest);
    }

  return problem;
}

typedef struct
{
  ElbusTreeCheckFunc func;
  gpointer           user_data;
  GString           *path;
  ElbusTopicTree    *topics;     /* NULL for a name tree */
  guint              n_subs;
} TreeCheck;

static const char *
name_node_check (const MaskNode *node,
                 gpointer        data)
{
  TreeCheck *check = data;

  if (node->one != NULL || node->rest != NULL || node->subs != NULL)
    return "a name tree node has topic tree fields";
  if (node->parent == NULL && node->has_value)
    return "the name tree's root holds a name";
  if (node->has_value)
    {
      node_path (node, '.', check->path);
      check->func (check->path->str, node->value, check->user_data);
    }
  return NULL;
}

static const char *
topic_node_check (const MaskNode *node,
                  gpointer        data)
{
  TreeCheck *check = data;

  if (node->has_value)
    return "a topic tree node holds a name";
  if (node->subs == NULL)
    return NULL;
  if (node->parent == NULL)
    return "the topic tree's root is subscribed";

  node_path (node, '/', check->path);
  for (guint i = 0; i < node->subs->len; i++)
    {
      const Subscription *sub = g_ptr_array_index (node->subs, i);
      GHashTable *subs_table = g_hash_table_lookup (check->topics->subscribers, sub->subscriber);

      if (sub->node != node || sub->index != i)
        return "a subscription's node or index is wrong";
      if (subs_table == NULL || g_hash_table_lookup (subs_table, node) != sub)
        return "a subscription is missing from its subscriber's table";
      check->func (check->path->str, sub->subscriber, check->user_data);
    }
  check->n_subs += node->subs->len;
  return NULL;
}

/**
 * _elbus_name_tree_check:
 * @tree: a tree
 * @func: (scope call): called with each name and its value
 * @user_data: data for @func
 *
 * Checks the links of every node of @tree (parents, siblings, child
 * counts and indexes, no empty node left unpruned) and reports each name
 * it holds to @func, rebuilt from the path to its node. For tests and
 * fuzzing: the cost is the size of the tree.
 *
 * Returns: (nullable): %NULL, or what is wrong
 */
const char *
_elbus_name_tree_check (ElbusNameTree      *tree,
                        ElbusTreeCheckFunc  func,
                        gpointer            user_data)
{
  g_autoptr(GString) path = g_string_new (NULL);
  TreeCheck check = { func, user_data, path, NULL, 0 };

  return tree_check (tree->root, name_node_check, &check);
}

/**
 * _elbus_topic_tree_check:
 * @tree: a tree
 * @func: (scope call): called with each mask and subscriber
 * @user_data: data for @func
 *
 * As _elbus_name_tree_check(), for a tree of subscriptions: also checks
 * that each subscription is in its subscriber's table and that the tables
 * hold nothing else. @func gets each (mask, subscriber) pair, the mask as
 * stored (`a/#/b` comes back as `a/#`).
 *
 * Returns: (nullable): %NULL, or what is wrong
 */
const char *
_elbus_topic_tree_check (ElbusTopicTree     *tree,
                         ElbusTreeCheckFunc  func,
                         gpointer            user_data)
{
  g_autoptr(GString) path = g_string_new (NULL);
  TreeCheck check = { func, user_data, path, tree, 0 };
  GHashTableIter iter;
  gpointer subs_table;
  guint n_subs = 0;
  const char *problem;

  problem = tree_check (tree->root, topic_node_check, &check);
  if (problem != NULL)
    return problem;

  g_hash_table_iter_init (&iter, tree->subscribers);
  while (g_hash_table_iter_next (&iter, NULL, &subs_table))
    {
      if (g_hash_table_size (subs_table) == 0)
        return "a subscriber keeps an empty table";
      n_subs += g_hash_table_size (subs_table);
    }
  if (n_subs != check.n_subs)
    return "the subscribers' tables hold subscriptions the tree does not";

  return NULL;
}

static inline void
topic_node_report (const MaskNode *node,
                   ElbusMaskFunc   func,
                   gpointer        user_data)
{
  guint i;

  if (node->subs == NULL)
    return;

  for (i = 0; i < node->subs->len; i++)
    {
      const Subscription *sub = g_ptr_array_index (node->subs, i);

      func (sub->subscriber, user_data);
    }
}

/**
 * _elbus_topic_tree_match:
 * @tree: a tree
 * @topic: (array length=topic_len): a published topic, not necessarily
 *   NUL-terminated; its levels are taken literally
 * @topic_len: the length of @topic in bytes
 * @func: (scope call): called with the subscriber of each matching mask
 * @user_data: data for @func
 *
 * Calls @func once for each (mask, subscriber) subscription whose mask
 * matches @topic, in no particular order. A subscriber with several
 * matching masks is reported once per mask: the caller must de-duplicate
 * (docs/protocol.md: a subscriber receives each publication once). @func must
 * not modify @tree.
 *
 * Allocates nothing (short of more than 32 nested `+` branches); the cost
 * follows the depth of @topic and the `+`/`#` branches met, not the number
 * of subscriptions.
 */
void
_elbus_topic_tree_match (ElbusTopicTree *tree,
                         const char     *topic,
                         gsize           topic_len,
                         ElbusMaskFunc   func,
                         gpointer        user_data)
{
  const char *end;
  WorkStack stack;

  g_return_if_fail (tree != NULL);
  g_return_if_fail (topic != NULL || topic_len == 0);
  g_return_if_fail (func != NULL);

  if (topic == NULL)
    topic = "";
  end = topic + topic_len;

  /* An item is a node whose children are to be matched against the topic
   * from pos on; there is always at least one level left there. */
  work_stack_init (&stack);
  work_stack_push (&stack, tree->root, topic);

  while (stack.len > 0)
    {
      MaskNode *node = stack.items[stack.len - 1].node;
      const char *pos = stack.items[stack.len - 1].pos;

      stack.len--;

      while (node != NULL)
        {
          const char *next;
          gsize level_len = part_next (pos, end, '/', &next);

          /* `#` takes this level and all the ones after it. */
          if (node->rest != NULL)
            topic_node_report (node->rest, func, user_data);

          if (node->one != NULL)
            {
              if (next == NULL)
                topic_node_report (node->one, func, user_data);
              else if (node->one->first_child != NULL ||
                       node->one->one != NULL ||
                       node->one->rest != NULL)
                work_stack_push (&stack, node->one, next);
            }

          node = node_lookup_child (node, pos, level_len);
          if (node != NULL && next == NULL)
            {
              topic_node_report (node, func, user_data);
              break;
            }
          pos = next;
        }
    }

  work_stack_clear (&stack);
}

/* One mask against one literal string */

/* Matches @mask against @subject, both split on @sep: a part that is
 * exactly @one matches any one part (an empty one too), a part that is
 * exactly @rest matches one or more remaining parts and ends the mask, any
 * other part matches itself. Walks both strings once; allocates nothing. */
static gboolean
mask_matches_literal (const char *mask,
                      gsize       mask_len,
                      const char *subject,
                      gsize       subject_len,
                      char        sep,
                      char        one,
                      char        rest,
                      gboolean    covers)
{
  const char *mask_end;
  const char *subject_end;
  const char *m;
  const char *s;

  if (mask == NULL)
    mask = "";
  if (subject == NULL)
    subject = "";
  mask_end = mask + mask_len;
  subject_end = subject + subject_len;

  /* m and s: the start of the current part, NULL past the last part. Both
   * strings have at least one part, an empty string being one empty part. */
  m = mask;
  s = subject;
  while (m != NULL)
    {
      const char *m_next;
      const char *s_next;
      gsize m_len = part_next (m, mask_end, sep, &m_next);
      gsize s_len;

      if (part_is (m, m_len, rest))
        return s != NULL;
      if (s == NULL)
        return FALSE;

      s_len = part_next (s, subject_end, sep, &s_next);
      /* a subject that is a mask too: its `*`/`#` reaches further than
       * anything but the same wildcard, which was handled above */
      if (covers && part_is (s, s_len, rest))
        return FALSE;
      if (!part_is (m, m_len, one) &&
          (m_len != s_len || memcmp (m, s, m_len) != 0))
        return FALSE;

      m = m_next;
      s = s_next;
    }

  return s == NULL;
}

/**
 * _elbus_name_mask_matches:
 * @mask: (array length=mask_len): a broadcast mask, not necessarily
 *   NUL-terminated
 * @mask_len: the length of @mask in bytes
 * @name: (array length=name_len): a name, not necessarily NUL-terminated;
 *   its parts are taken literally (a `?` or `*` part in it is just text)
 * @name_len: the length of @name in bytes
 *
 * Tells whether @mask reaches @name, with the rules of
 * _elbus_name_tree_match(): parts are separated by `.`, a part that is
 * exactly `?` matches any one part (an empty one too), a part that is
 * exactly `*` matches one or more parts and ends the mask (`a.*.b` acts as
 * `a.*`, and `*` alone matches every name), any other part matches itself.
 *
 * For one mask and one name, without a tree: the security policy checks a
 * target against each of a client's allowed masks. Allocates nothing.
 *
 * Returns: %TRUE if @mask matches @name
 */
gboolean
_elbus_name_mask_matches (const char *mask,
                          gsize       mask_len,
                          const char *name,
                          gsize       name_len)
{
  g_return_val_if_fail (mask != NULL || mask_len == 0, FALSE);
  g_return_val_if_fail (name != NULL || name_len == 0, FALSE);

  return mask_matches_literal (mask, mask_len, name, name_len, '.', '?', '*', FALSE);
}

/**
 * _elbus_topic_mask_matches:
 * @mask: (array length=mask_len): a subscription mask, not necessarily
 *   NUL-terminated
 * @mask_len: the length of @mask in bytes
 * @topic: (array length=topic_len): a topic, not necessarily
 *   NUL-terminated; its levels are taken literally (a `+` or `#` level in
 *   it is just text)
 * @topic_len: the length of @topic in bytes
 *
 * Tells whether @mask matches @topic, with the rules of
 * _elbus_topic_tree_match(): levels are separated by `/`, a level that is
 * exactly `+` matches any one level (an empty one too), a level that is
 * exactly `#` matches one or more levels and ends the mask (`a/#/b` acts as
 * `a/#`, and `#` alone matches every topic), any other level matches
 * itself.
 *
 * For one mask and one topic, without a tree: the security policy checks a
 * topic against each of a client's allowed masks. Allocates nothing.
 *
 * Returns: %TRUE if @mask matches @topic
 */
gboolean
_elbus_topic_mask_matches (const char *mask,
                           gsize       mask_len,
                           const char *topic,
                           gsize       topic_len)
{
  g_return_val_if_fail (mask != NULL || mask_len == 0, FALSE);
  g_return_val_if_fail (topic != NULL || topic_len == 0, FALSE);

  return mask_matches_literal (mask, mask_len, topic, topic_len, '/', '+', '#', FALSE);
}

/**
 * _elbus_name_mask_covers:
 * @mask: (array length=mask_len): a broadcast mask
 * @mask_len: the length of @mask in bytes
 * @other: (array length=other_len): another broadcast mask
 * @other_len: the length of @other in bytes
 *
 * Tells whether every name @other reaches is reached by @mask, for the
 * policy's check of a broadcast mask against the allowed ones. As
 * _elbus_name_mask_matches(), but a `*` part of @other (which ends it) is
 * covered only by a `*` of @mask; a `?` of @other is covered by a `?` or a
 * `*` of @mask, not by a literal part.
 *
 * Returns: %TRUE if @mask covers @other
 */
gboolean
_elbus_name_mask_covers (const char *mask,
                         gsize       mask_len,
                         const char *other,
                         gsize       other_len)
{
  g_return_val_if_fail (mask != NULL || mask_len == 0, FALSE);
  g_return_val_if_fail (other != NULL || other_len == 0, FALSE);

  return mask_matches_literal (mask, mask_len, other, other_len, '.', '?', '*', TRUE);
}

/**
 * _elbus_topic_mask_covers:
 * @mask: (array length=mask_len): a subscription mask
 * @mask_len: the length of @mask in bytes
 * @other: (array length=other_len): another subscription mask
 * @other_len: the length of @other in bytes
 *
 * Tells whether every topic @other matches is matched by @mask, for the
 * policy's check of a requested subscription against the allowed masks:
 * a `#` level of @other is covered only by a `#` of @mask, a `+` by a `+`
 * or a `#`.
 *
 * Returns: %TRUE if @mask covers @other
 */
gboolean
_elbus_topic_mask_covers (const char *mask,
                          gsize       mask_len,
                          const char *other,
                          gsize       other_len)
{
  g_return_val_if_fail (mask != NULL || mask_len == 0, FALSE);
  g_return_val_if_fail (other != NULL || other_len == 0, FALSE);

  return mask_matches_literal (mask, mask_len, other, other_len, '/', '+', '#', TRUE);
}
