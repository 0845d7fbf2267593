package optlock

import (
	"container/list"
	"context"
	"sync"
)

// Cache sizes. An application that writes to a table per month or per tenant (Table("events_" +
// month)) would otherwise keep every table's column types and lock spec for as long as the plugin
// lives; the least recently used are forgotten instead, and read again if they are needed again.
const (
	maxCachedTables = 256
	maxCachedSpecs  = 512
)

// lru is a map that holds at most max entries (a default when max is 0), forgetting the least
// recently used one to make room. Its zero value is ready to use; it is safe for concurrent use.
type lru[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *lruEntry, most recently used first
	items map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key   K
	value V
}

func (c *lru[K, V]) get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).value, true
	}
	var zero V
	return zero, false
}

// add stores value under key and returns the value now stored: one stored earlier by another
// goroutine wins, so every caller ends up using the same value.
func (c *lru[K, V]) add(key K, value V, limit int) V {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items, c.order = make(map[K]*list.Element), list.New()
	}
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).value
	}
	c.items[key] = c.order.PushFront(&lruEntry[K, V]{key: key, value: value})
	max := c.max
	if max <= 0 {
		max = limit
	}
	for c.order.Len() > max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*lruEntry[K, V]).key)
	}
	return value
}

func (c *lru[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// columnCache holds the column types of recently written tables, and makes concurrent first writes
// of one table read its types once: the first reads, the others wait for it.
type columnCache struct {
	tables  lru[tableKey, *tableColumns]
	mu      sync.Mutex
	loading map[tableKey]*columnLoad
}

// columnLoad is a read of one table's column types under way.
type columnLoad struct {
	done chan struct{}
	// pinned says the read runs on a connection its statement already holds (a transaction): it
	// needs none from the pool, so waiting for it cannot wait for a connection the waiter holds.
	pinned  bool
	columns *tableColumns
}

// get returns the table's column types, from the cache or from read, which is called at most once at a
// time per table, except where waiting could deadlock: a statement that holds a connection (pinned)
// does not wait for a read that needs one from the pool (the pool may be empty because of it), and
// reads on its own. A failed read (nil) is not cached.
func (c *columnCache) get(ctx context.Context, key tableKey, pinned bool, read func() *tableColumns) *tableColumns {
	if cols, ok := c.tables.get(key); ok {
		return cols
	}
	c.mu.Lock()
	if cols, ok := c.tables.get(key); ok {
		c.mu.Unlock()
		return cols
	}
	if l, ok := c.loading[key]; ok {
		c.mu.Unlock()
		if l.pinned || !pinned {
			select {
			case <-l.done:
				if l.columns != nil {
					return l.columns
				}
			case <-ctx.Done():
			}
		}
		if cols := read(); cols != nil {
			return c.tables.add(key, cols, maxCachedTables)
		}
		return nil
	}
	if c.loading == nil {
		c.loading = make(map[tableKey]*columnLoad)
	}
	l := &columnLoad{done: make(chan struct{}), pinned: pinned}
	c.loading[key] = l
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		if l.columns != nil {
			l.columns = c.tables.add(key, l.columns, maxCachedTables)
		}
		delete(c.loading, key)
		c.mu.Unlock()
		close(l.done)
	}()
	l.columns = read()
	return l.columns
}
