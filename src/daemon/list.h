/* An intrusive doubly linked list (as the kernel's list_head): no allocation, O(1) removal. */
#pragma once

#include <stddef.h>

struct ne_list {
	struct ne_list *prev, *next;
};

static inline void ne_list_init(struct ne_list *l)
{
	l->prev = l->next = l;
}

static inline int ne_list_empty(const struct ne_list *l)
{
	return l->next == l;
}

static inline void ne_list_append(struct ne_list *head, struct ne_list *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void ne_list_remove(struct ne_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

#define ne_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Iterates safely against removal of the current entry. */
#define ne_list_for_each(pos, tmp, head) \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); (pos) = (tmp), (tmp) = (pos)->next)
